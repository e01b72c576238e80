"""The feature rows of a case: the properties a profile must cover in every column (rank,
stride, padding pairs, output_padding, dilation, groups, bias, dtype, non-finite values,
invalid configurations), and the stratum a check falls in.

Convention: the canonical case (docs/case-format.md); a feature is a short string.
"""

from __future__ import annotations

from convt_conformance.loading.cases import Case

#: every feature a case can show (the rows a profile's coverage is stated in)
FEATURES: tuple[str, ...] = (
    "rank1", "rank2", "rank3", "stride>1", "stride>kernel", "padding", "asymmetric-padding",
    "output-padding", "dilation>1", "groups>1", "depthwise", "bias", "batch>1", "non-finite",
    "expected-values", "invalid",
)


_MEMO: dict[int, tuple[Case, frozenset[str]]] = {}


def case_features(case: Case) -> frozenset[str]:
    """The features ``case`` shows (independent of dtype); memoised per case object (a profile's
    selection asks once per check: ~300k times for 1,089 cases)."""
    hit = _MEMO.get(id(case))
    if hit is not None and hit[0] is case:
        return hit[1]
    out = _features(case)
    _MEMO[id(case)] = (case, out)
    return out


def _features(case: Case) -> frozenset[str]:
    f = {f"rank{case.rank}"} if case.rank in (1, 2, 3) else set()
    if case.expected_error:
        f.add("invalid")
        return frozenset(f)
    g = case.geometry
    if any(s > 1 for s in g.stride):
        f.add("stride>1")
    if any(s > d * (k - 1) + 1 for s, k, d in zip(g.stride, g.kernel, g.dilation)):
        f.add("stride>kernel")
    if any(b or e for b, e in g.padding):
        f.add("padding")
    if any(b != e for b, e in g.padding):
        f.add("asymmetric-padding")
    if any(op > 0 for op in g.output_padding):
        f.add("output-padding")
    if any(d > 1 for d in g.dilation):
        f.add("dilation>1")
    if case.groups > 1:
        f.add("groups>1")
        if case.groups == case.in_channels:
            f.add("depthwise")
    if case.bias is not None:
        f.add("bias")
    if case.input.shape and case.input.shape[0] > 1:
        f.add("batch>1")
    if case.has_nonfinite_values:
        f.add("non-finite")
    if case.expected_values is not None:
        f.add("expected-values")
    return frozenset(f)


def stratum(case: Case, dtype: str) -> tuple[str, ...]:
    """The stratum of a check: its case's features and its dtype (sorted, hashable)."""
    return (*sorted(case_features(case)), dtype)
