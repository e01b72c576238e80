"""The feature rows of a case: the properties a profile must cover in every column, and the
stratum a check falls in.

A feature is a short string naming a property a plausible implementation bug depends on:

- geometry: rank, stride > 1, stride > kernel extent, a kernel of size 1 on some axis, padding
  (asymmetric), output_padding (at its bound ``max(stride, dilation) - 1``; at least the stride,
  valid below the dilation),
  dilation > 1, stride / dilation / padding differing between axes, groups (depthwise, more than
  8 input channels a group, a bias with groups), a bias, the batch (empty, one sample, several);
- values: non-finite values, a non-finite input meeting a zero weight tap and a zero input
  meeting a non-finite weight tap where that product alone makes the output NaN (0 x Inf = NaN:
  an implementation that skips zero taps or zero inputs loses it), a float32-subnormal exact
  result;
- the case: written expected values, an invalid configuration (an invalid case shows its rank,
  ``invalid`` and ``breaks-<rule>`` for each validity rule it breaks, the rule ids of
  ``checking/invalid_rules.yaml``: a framework may skip any one of them).

:data:`FEATURES` lists them (the rows of a profile's coverage, ``conformance plan``'s list and
the feature conditions of a known disagreement's ``where:``); :data:`STRATUM_FEATURES` the
structural ones a stratum is made of. Convention: the canonical case (docs/case-format.md).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np

from convt_conformance.loading.cases import Case
from convt_conformance.loading.yaml_io import load_yaml
from convt_conformance.oracle.forward import conv_transpose_scatter

#: the structural features (before 2026-12-07 the whole feature model): a check's stratum is its
#: case's set of these and its dtype, so the strata, and every pick made per stratum, stay as they were
STRATUM_FEATURES: tuple[str, ...] = (
    "rank1", "rank2", "rank3", "stride>1", "stride>kernel", "padding", "asymmetric-padding",
    "output-padding", "dilation>1", "groups>1", "depthwise", "bias", "batch>1", "non-finite",
    "expected-values", "invalid",
)

#: every feature a case can show (the rows a profile's coverage is stated in)
FEATURES: tuple[str, ...] = (
    *STRATUM_FEATURES,
    "kernel1", "output-padding-at-bound", "output-padding>=stride", "per-axis-stride", "per-axis-dilation", "per-axis-padding",
    "grouped-bias", "in-per-group>8", "empty-batch", "single-batch", "nonfinite-input-x-zero-weight",
    "zero-input-x-nonfinite-weight", "subnormal-output",
)

#: the rank features: a feature x rank x dtype triple names its rank by these
RANKS: tuple[str, ...] = ("rank1", "rank2", "rank3")

#: features no case of a rank can show: per-axis differences need two spatial axes
RANK_EXCLUDED: frozenset[tuple[str, str]] = frozenset(
    (f, "rank1") for f in ("per-axis-stride", "per-axis-dilation", "per-axis-padding"))

#: features no check of a dtype can show: float16 has no float32-subnormal values (its inputs
#: round them to zero), and in float64 they are normal numbers (nothing to flush)
DTYPE_EXCLUDED: frozenset[tuple[str, str]] = frozenset({("subnormal-output", "float16"),
                                                        ("subnormal-output", "float64")})

#: input channels per group above which a channel reduction is "wide" (blocked / vectorised
#: kernels split it)
WIDE_GROUP = 8
_SMALLEST_NORMAL_F32 = 2.0 ** -126
_SMALLEST_NORMAL_F16 = 2.0 ** -14

_MEMO: dict[int, tuple[Case, frozenset[str]]] = {}
_VALUE_MEMO: dict[int, tuple[Case, frozenset[str]]] = {}
_OUTPUT_MEMO: dict[int, tuple[Case, frozenset[str]]] = {}


_RULES_FILE = Path(__file__).resolve().parents[1] / "checking" / "invalid_rules.yaml"
#: an invalid case's feature for a validity rule it breaks: ``breaks-<rule id>``
RULE_FEATURE = "breaks-"


@cache
def rule_reasons() -> dict[str, tuple[re.Pattern[str], ...]]:
    """The validity rules' ids and the loader's reason patterns of each (the data of
    ``checking/invalid_rules.yaml``, read as data: the rules' one statement)."""
    data = load_yaml(_RULES_FILE.read_text(encoding="utf-8"))
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, dict):
        raise ValueError(f"{_RULES_FILE}: no `rules` mapping")
    return {str(rid): tuple(re.compile(p, re.I) for p in (r or {}).get("reasons", [])) for rid, r in rules.items()}


def broken_rules(case: Case) -> frozenset[str]:
    """The ids of the validity rules an invalid case breaks (none for a valid case)."""
    rules = rule_reasons()
    return frozenset(rid for rid, pats in rules.items()
                     if any(p.search(reason) for p in pats for reason in case.invalid_reasons))


def rule_features() -> tuple[str, ...]:
    """``breaks-<rule>`` for every validity rule (the features only invalid cases show)."""
    return tuple(f"{RULE_FEATURE}{r}" for r in rule_reasons())


def case_features(case: Case) -> frozenset[str]:
    """The features ``case`` shows (independent of dtype); memoised per case object (a profile's
    selection asks once per check: ~300k times for 1,089 cases)."""
    hit = _MEMO.get(id(case))
    if hit is not None and hit[0] is case:
        return hit[1]
    out = _features(case)
    _MEMO[id(case)] = (case, out)
    return out


def _differs(values: tuple[object, ...]) -> bool:
    return len(set(values)) > 1


def _features(case: Case) -> frozenset[str]:
    f = {f"rank{case.rank}"} if case.rank in (1, 2, 3) else set()
    if case.expected_error:
        f.add("invalid")
        f |= {f"{RULE_FEATURE}{r}" for r in broken_rules(case)}
        return frozenset(f)
    g = case.geometry
    if any(s > 1 for s in g.stride):
        f.add("stride>1")
    if any(s > d * (k - 1) + 1 for s, k, d in zip(g.stride, g.kernel, g.dilation)):
        f.add("stride>kernel")
    if any(k == 1 for k in g.kernel):
        f.add("kernel1")
    if any(b or e for b, e in g.padding):
        f.add("padding")
    if any(b != e for b, e in g.padding):
        f.add("asymmetric-padding")
    if any(op > 0 for op in g.output_padding):
        f.add("output-padding")
    if any(0 < op == max(s, d) - 1 for op, s, d in zip(g.output_padding, g.stride, g.dilation)):
        f.add("output-padding-at-bound")
    if any(op >= s for op, s in zip(g.output_padding, g.stride)):
        f.add("output-padding>=stride")  # valid only below the dilation
    if any(d > 1 for d in g.dilation):
        f.add("dilation>1")
    for name, values in (("per-axis-stride", tuple(g.stride)), ("per-axis-dilation", tuple(g.dilation)),
                         ("per-axis-padding", tuple(g.padding))):
        if _differs(values):
            f.add(name)
    if case.groups > 1:
        f.add("groups>1")
        if case.groups == case.in_channels:
            f.add("depthwise")
        if case.bias is not None:
            f.add("grouped-bias")
    if case.groups >= 1 and case.in_channels // case.groups > WIDE_GROUP:
        f.add("in-per-group>8")
    if case.bias is not None:
        f.add("bias")
    batch = case.input.shape[0] if case.input.shape else 1
    f.add("batch>1" if batch > 1 else "single-batch" if batch == 1 else "empty-batch")
    if case.has_nonfinite_values:
        f.add("non-finite")
        f |= _zero_times_nonfinite(case)
    if case.expected_values is not None:
        f.add("expected-values")
    if "subnormal-output" in output_features(case):
        f.add("subnormal-output")
    return frozenset(f)


def _reach(case: Case, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """How many (input element, weight tap) pairs with ``x`` and ``w`` nonzero land on each
    output element (0/1 indicator tensors in the case's layout, so groups and the crop apply)."""
    g = case.geometry
    return conv_transpose_scatter(x.astype(np.float64), w.astype(np.float64), None, stride=g.stride,
                                  padding=g.padding, output_padding=g.output_padding, dilation=g.dilation,
                                  groups=case.groups)


def _zero_times_nonfinite(case: Case) -> set[str]:
    """``nonfinite-input-x-zero-weight`` / ``zero-input-x-nonfinite-weight``: some output element
    is NaN only through a non-finite input times a zero weight tap (or a zero input times a
    non-finite tap): no other non-finite term reaches it, and its channel's bias is finite."""
    x, w, b = case.tensors("float64")
    if x.size == 0 or w.size == 0:
        return set()
    x_bad, w_bad = ~np.isfinite(x), ~np.isfinite(w)
    any_x, any_w = np.ones_like(x, dtype=bool), np.ones_like(w, dtype=bool)
    ok_channel = np.ones(case.out_channels, dtype=bool) if b is None else np.isfinite(b)
    ok_channel = ok_channel.reshape((1, -1) + (1,) * case.rank)
    out: set[str] = set()
    with np.errstate(all="ignore"):
        only = _reach(case, x_bad, w == 0) > 0
        others = (_reach(case, x_bad, w != 0) > 0) | (_reach(case, any_x, w_bad) > 0)
        if (only & ~others & ok_channel).any():
            out.add("nonfinite-input-x-zero-weight")
        only = _reach(case, x == 0, w_bad) > 0
        others = (_reach(case, x != 0, w_bad) > 0) | (_reach(case, x_bad, any_w) > 0)
        if (only & ~others & ok_channel).any():
            out.add("zero-input-x-nonfinite-weight")
    return out


#: features of a case's values (literal tensors, or the generated ones in float64), for a known
#: disagreement's ``where:`` (:mod:`convt_conformance.loading.scope`)
VALUE_FEATURES: tuple[str, ...] = (
    "nan-input", "inf-input", "nonfinite-input", "nan-weight", "inf-weight", "nonfinite-weight",
    "nonfinite-bias", "zero-weight", "subnormal-input", "subnormal-weight", "f16-subnormal-output", "subnormal",
)

#: the features :func:`output_features` gives (from the exact output)
OUTPUT_FEATURES: tuple[str, ...] = ("subnormal-output", "f16-subnormal-output", "subnormal")


def value_features(case: Case) -> frozenset[str]:
    """The value features of ``case`` (memoised per case object): ``nan-``/``inf-``/``nonfinite-``
    of the input, weight and bias, ``zero-weight``, ``subnormal-input`` / ``subnormal-weight``
    (a nonzero magnitude below float32's smallest normal)."""
    hit = _VALUE_MEMO.get(id(case))
    if hit is not None and hit[0] is case:
        return hit[1]
    out: set[str] = set()
    tensors: tuple[np.ndarray | None, ...]
    try:
        tensors = case.tensors("float64")
    except (ValueError, TypeError, MemoryError):  # an invalid case's tensors may not exist
        tensors = (None, None, None)
    for name, arr in zip(("input", "weight", "bias"), tensors):
        if arr is None or arr.size == 0:
            continue
        if np.isnan(arr).any():
            out.add(f"nan-{name}")
        if np.isinf(arr).any():
            out.add(f"inf-{name}")
        if not np.isfinite(arr).all():
            out.add(f"nonfinite-{name}")
        finite = np.abs(arr[np.isfinite(arr)])
        if name == "weight" and (arr == 0).any():
            out.add("zero-weight")
        if name != "bias" and ((finite > 0) & (finite < _SMALLEST_NORMAL_F32)).any():
            out.add(f"subnormal-{name}")
    result = frozenset(o for o in out if o in VALUE_FEATURES)
    _VALUE_MEMO[id(case)] = (case, result)
    return result


def output_features(case: Case) -> frozenset[str]:
    """The features of a valid case's exact output (the oracle's, float64; memoised):
    ``subnormal-output`` (a nonzero magnitude below float32's (and bfloat16's) smallest normal),
    ``f16-subnormal-output`` (below float16's), ``subnormal`` (a float32-subnormal input, weight
    or exact output)."""
    hit = _OUTPUT_MEMO.get(id(case))
    if hit is not None and hit[0] is case:
        return hit[1]
    out: set[str] = set()
    if not case.expected_error:
        x, w, b = case.tensors("float64")
        g = case.geometry
        with np.errstate(all="ignore"):
            y = conv_transpose_scatter(x, w, b, stride=g.stride, padding=g.padding, output_padding=g.output_padding,
                                       dilation=g.dilation, groups=case.groups)
        mag = np.abs(y[np.isfinite(y)])
        if ((mag > 0) & (mag < _SMALLEST_NORMAL_F32)).any():
            out.add("subnormal-output")
        if ((mag > 0) & (mag < _SMALLEST_NORMAL_F16)).any():
            out.add("f16-subnormal-output")
    if "subnormal-output" in out or value_features(case) & {"subnormal-input", "subnormal-weight"}:
        out.add("subnormal")
    result = frozenset(out)
    _OUTPUT_MEMO[id(case)] = (case, result)
    return result


def stratum(case: Case, dtype: str) -> tuple[str, ...]:
    """The stratum of a check: its case's structural features (:data:`STRATUM_FEATURES`) and its
    dtype (sorted, hashable)."""
    return (*sorted(case_features(case) & frozenset(STRATUM_FEATURES)), dtype)


_TRIPLES_MEMO: dict[tuple[int, str], tuple[Case, frozenset[tuple[str, str, str]]]] = {}


def coverage_triples(case: Case, dtype: str) -> frozenset[tuple[str, str, str]]:
    """The (feature, rank, dtype) triples a check of ``case`` in ``dtype`` shows: every feature of
    the case with the case's rank feature and the dtype (the rank features themselves included);
    memoised per case object and dtype."""
    hit = _TRIPLES_MEMO.get((id(case), dtype))
    if hit is not None and hit[0] is case:
        return hit[1]
    rank = f"rank{case.rank}"
    out = frozenset((f, rank, dtype) for f in case_features(case) if (f, dtype) not in DTYPE_EXCLUDED)
    _TRIPLES_MEMO[(id(case), dtype)] = (case, out)
    return out


def possible_triples(dtypes: tuple[str, ...]) -> frozenset[tuple[str, str, str]]:
    """Every (feature, rank, dtype) triple a case can show in one of ``dtypes``: all but those of
    :data:`RANK_EXCLUDED` and :data:`DTYPE_EXCLUDED`, a rank feature only with itself, and
    ``invalid`` (which shows no other feature) with every rank; the ``breaks-<rule>`` features with
    every rank in float32 (a framework validates before any arithmetic: the rule, not the dtype,
    selects the code)."""
    out = {(f, r, "float32") for f in rule_features() for r in RANKS if "float32" in dtypes}
    for f in FEATURES:
        for r in RANKS:
            if (f in RANKS and f != r) or (f, r) in RANK_EXCLUDED:
                continue
            out |= {(f, r, d) for d in dtypes if (f, d) not in DTYPE_EXCLUDED}
    return frozenset(out)
