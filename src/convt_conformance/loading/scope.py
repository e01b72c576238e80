"""The scope of a known disagreement: the releases it was seen on and the configurations it concerns.

**Releases** (``versions:``): a mapping from distribution names to PEP 440 specifiers
(``{onnxruntime: ">=1.20,<1.32"}``), parsed with ``packaging``. Every named distribution must be
installed in a release the specifier contains; ``a|b`` names whichever of two distributions of one
framework is installed (``tensorflow-cpu|tensorflow``).

**Configurations** (``where:``): a list of conditions on the case, all of which must hold. A
condition is one of

- a feature of the case (:data:`convt_conformance.loading.features.FEATURES`, or a value feature of
  :data:`VALUE_FEATURES` such as ``nan-input`` or ``zero-weight``), or ``not <feature>``;
- a comparison ``<a> <op> <b>`` with ``op`` one of ``== != < <= > >=``, each side a quantity of
  :data:`AXIS_QUANTITIES` (one value per spatial axis: the comparison holds when it holds on SOME
  axis; prefix the condition with ``every`` to ask for all axes), of :data:`SCALAR_QUANTITIES`, or an
  integer (``groups > 1``, ``output_padding >= stride``, ``dilation > 1``, ``batch == 0``);
- ``padding_mode == <word>`` / ``padding_mode != <word>`` / ``padding_mode in [<word>, ...]``
  (``explicit`` for a case with numeric padding);
- ``breaks <rule>`` / ``not breaks <rule>``: an invalid case breaking the validity rule of that id
  (the rules of ``checking/invalid_rules.yaml``: ``negative-padding``, ``zero-spatial``, ...).

Conventions: the canonical case (PyTorch's: ``padding`` cut from both ends, ``output_padding`` at
the far end, weight ``(C_in, C_out/groups, *K)``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from convt_conformance.loading.features import (
    FEATURES,
    OUTPUT_FEATURES,
    VALUE_FEATURES,
    broken_rules,
    case_features,
    output_features,
    rule_reasons,
    value_features,
)
from convt_conformance.model.case import Case

AXIS_QUANTITIES: tuple[str, ...] = (
    "stride", "dilation", "output_padding", "kernel", "kernel_extent", "pad_begin", "pad_end", "pad",
    "input_size", "output_size",
)
SCALAR_QUANTITIES: tuple[str, ...] = (
    "rank", "groups", "batch", "in_channels", "out_channels", "in_per_group", "out_per_group",
)
_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}
_BREAKS = re.compile(r"\A(not\s+)?breaks\s+([a-z0-9-]+)\Z")
_COMPARISON = re.compile(r"\A(every\s+)?([a-z_]+|-?\d+)\s*(==|!=|<=|>=|<|>)\s*([a-z_]+|-?\d+)\Z")
_MODE = re.compile(r"\Apadding_mode\s*(==|!=|\bin\b)\s*(.+)\Z")


def axis_quantities(case: Case) -> dict[str, tuple[int, ...]]:
    """The per-axis quantities of ``case`` (see :data:`AXIS_QUANTITIES`)."""
    g = case.geometry
    extent = tuple(d * (k - 1) + 1 for k, d in zip(g.kernel, g.dilation))
    out = case.output_shape[2:] if len(case.output_shape) > 2 else ()
    return {
        "stride": tuple(g.stride), "dilation": tuple(g.dilation), "output_padding": tuple(g.output_padding),
        "kernel": tuple(g.kernel), "kernel_extent": extent, "pad_begin": tuple(b for b, _ in g.padding),
        "pad_end": tuple(e for _, e in g.padding), "pad": tuple(max(b, e) for b, e in g.padding),
        "input_size": tuple(case.input.shape[2:]), "output_size": tuple(out),
    }


def scalar_quantities(case: Case) -> dict[str, int]:
    """The scalar quantities of ``case`` (see :data:`SCALAR_QUANTITIES`)."""
    groups = max(case.groups, 1)
    return {"rank": case.rank, "groups": case.groups, "batch": case.input.shape[0] if case.input.shape else 0,
            "in_channels": case.in_channels, "out_channels": case.out_channels,
            "in_per_group": case.in_channels // groups, "out_per_group": case.out_channels // groups}


@dataclass(frozen=True)
class Condition:
    """One parsed ``where:`` condition; :meth:`holds` evaluates it on a case."""

    text: str
    kind: str  # "feature", "compare", "mode"
    negated: bool = False
    every: bool = False
    left: str = ""
    op: str = ""
    right: str = ""
    words: tuple[str, ...] = ()

    def holds(self, case: Case) -> bool:
        if self.kind == "feature":
            has = self.left in case_features(case) or (
                self.left in output_features(case) if self.left in OUTPUT_FEATURES else self.left in value_features(case))
            return has != self.negated
        if self.kind == "breaks":
            return (self.left in broken_rules(case)) != self.negated
        if self.kind == "mode":
            mode = case.padding_mode or "explicit"
            return (mode in self.words) if self.op != "!=" else (mode not in self.words)
        return self._compare(case)

    def _compare(self, case: Case) -> bool:
        axes, scalars = axis_quantities(case), scalar_quantities(case)

        def values(side: str) -> tuple[int, ...] | int:
            if side in axes:
                return axes[side]
            if side in scalars:
                return scalars[side]
            return int(side)

        a, b = values(self.left), values(self.right)
        lengths = [len(v) for v in (a, b) if isinstance(v, tuple)]
        if not lengths:
            return _OPS[self.op](a, b)  # type: ignore[arg-type]
        n = min(lengths)  # an invalid case may give its per-axis values in other lengths: the common axes
        if n == 0:
            return False
        pairs = [(a[i] if isinstance(a, tuple) else a, b[i] if isinstance(b, tuple) else b) for i in range(n)]
        results = [_OPS[self.op](x, y) for x, y in pairs]
        return all(results) if self.every else any(results)


def parse_condition(text: str) -> tuple[Condition | None, str | None]:
    """(the condition, None) or (None, what is wrong with ``text``)."""
    t = " ".join(str(text).split())
    negated = t.startswith("not ")
    name = t[4:] if negated else t
    if name in FEATURES or name in VALUE_FEATURES:
        return Condition(t, "feature", negated=negated, left=name), None
    m = _BREAKS.match(t)
    if m:
        if m.group(2) not in rule_reasons():
            return None, f"{text!r}: unknown rule {m.group(2)!r}; known: {', '.join(rule_reasons())}"
        return Condition(t, "breaks", negated=bool(m.group(1)), left=m.group(2)), None
    m = _MODE.match(t)
    if m:
        op, rest = m.group(1), m.group(2).strip()
        if op == "in":
            if not (rest.startswith("[") and rest.endswith("]")):
                return None, f"{text!r}: `padding_mode in` takes a list, e.g. [same, same_upper]"
            words = tuple(w.strip() for w in rest[1:-1].split(",") if w.strip())
        else:
            words = (rest,)
        return Condition(t, "mode", op=op, words=words), None
    m = _COMPARISON.match(t)
    if not m:
        return None, (f"{text!r}: not a condition; a feature ({', '.join((*FEATURES, *VALUE_FEATURES))}), "
                      "`not <feature>`, `<quantity> <op> <quantity or integer>`, `padding_mode in [...]` or "
                      "`breaks <rule>`")
    every, left, op, right = bool(m.group(1)), m.group(2), m.group(3), m.group(4)
    known = (*AXIS_QUANTITIES, *SCALAR_QUANTITIES)
    for side in (left, right):
        if not re.fullmatch(r"-?\d+", side) and side not in known:
            return None, f"{text!r}: unknown quantity {side!r}; known: {', '.join(known)}"
    if every and not any(s in AXIS_QUANTITIES for s in (left, right)):
        return None, f"{text!r}: `every` applies to per-axis quantities ({', '.join(AXIS_QUANTITIES)})"
    return Condition(t, "compare", every=every, left=left, op=op, right=right), None


def parse_where(value: object) -> tuple[tuple[Condition, ...], list[str]]:
    """The conditions of a ``where:`` value (a list of strings, or one string) and the problems."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        return (), ["must be a list of conditions (strings)"]
    out, problems = [], []
    for v in items:
        cond, why = parse_condition(v)
        if why:
            problems.append(why)
        elif cond is not None:
            out.append(cond)
    return tuple(out), problems


def where_holds(conditions: Sequence[Condition], case: Case) -> bool:
    """Whether every condition holds on ``case``."""
    return all(c.holds(case) for c in conditions)


# ---- releases ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionScope:
    """The releases an entry was seen on: ``{distribution: SpecifierSet}``."""

    specs: tuple[tuple[str, SpecifierSet], ...]

    def describe(self) -> str:
        """``onnxruntime >=1.20,<1.32`` (the scope as the messages say it)."""
        return ", ".join(f"{d} {s}" for d, s in self.specs)

    def installed(self, version_of: Callable[[str], str | None] | None = None) -> str:
        """The installed releases of the named distributions (``onnxruntime 1.31.1``)."""
        out = []
        for d, _ in self.specs:
            name, v = _installed_of(d, version_of)
            out.append(f"{name} {v or 'not installed'}")
        return ", ".join(out)

    def holds(self, version_of: Callable[[str], str | None] | None = None) -> bool:
        """Whether every named distribution is installed in a release its specifier contains."""
        for dist, spec in self.specs:
            _, v = _installed_of(dist, version_of)
            if v is None:
                return False
            try:
                if Version(v) not in spec:
                    return False
            except InvalidVersion:
                return False
        return True


def _installed_of(names: str, version_of: Callable[[str], str | None] | None) -> tuple[str, str | None]:
    """The first installed distribution of ``a|b`` (or ``a``) and its release (None: none is)."""
    look = version_of or installed_version
    alternatives = names.split("|")
    for name in alternatives:
        v = look(name)
        if v is not None:
            return name, v
    return alternatives[0], None


def parse_versions(value: object) -> tuple[VersionScope | None, str | None]:
    """(the scope, None) or (None, what is wrong): a non-empty mapping of distribution names to
    PEP 440 specifier strings (``"==2.13.0"``, ``">=1.20,<1.32"``)."""
    if not isinstance(value, Mapping) or not value:
        return None, "must be a mapping of distribution names to PEP 440 specifiers, e.g. {<distribution>: \">=1.2,<1.4\"}"
    specs = []
    for dist, text in value.items():
        if not isinstance(dist, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\|[A-Za-z0-9][A-Za-z0-9._-]*)*", dist):
            return None, f"{dist!r}: not a distribution name"
        if not isinstance(text, str) or not text.strip():
            return None, f"{dist}: the specifier must be a non-empty string such as \">=1.20,<1.32\""
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier as exc:
            return None, f"{dist}: {exc}"
        if not any(True for _ in spec):
            return None, f"{dist}: an empty specifier"
        specs.append((dist, spec))
    return VersionScope(tuple(specs)), None


@cache
def installed_version(distribution: str) -> str | None:
    """The installed release of ``distribution`` in this process's environment (None: not installed)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
