"""The data model of loaded cases: :class:`Case`, :class:`TensorSpec`, :class:`CaseProblem`,
:class:`LoadResult` (canonical PyTorch convention, see docs/case-format.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convt_conformance.model.dtypes import finfo, round_to
from convt_conformance.model.spec import ConvSpec, PadPairs


@dataclass(frozen=True)
class CaseProblem:
    """One validation problem, located precisely."""

    file: str
    case: str  # case id, or "cases[i]" when the id itself is missing/broken, or "" (file-level)
    key: str  # key path, e.g. "cases[3].weight.values"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.case:
            where += f": case {self.case}"
        return f"{where}: {self.key or '<file>'}: {self.message}"


#: a normal draw beyond mean +- 64 std has probability far below 1e-300: within that band, every
#: draw of a ``normal`` recipe lies (case validation and the range checks below rely on it)
NORMAL_SIGMAS = 64


@dataclass(frozen=True)
class TensorSpec:
    """A tensor given by literal values (float64) or by a seeded random recipe."""

    shape: tuple[int, ...]
    values: np.ndarray | None = None
    random: dict[str, Any] | None = None

    def generate(self) -> np.ndarray:
        """The tensor in float64; random ones come from ``numpy.random.default_rng(seed)``."""
        if self.values is not None:
            return self.values.copy()
        r = self.random or {}
        rng = np.random.default_rng(r["seed"])
        dist = r["distribution"]
        if dist == "uniform":
            return rng.uniform(r.get("low", -1.0), r.get("high", 1.0), self.shape)
        if dist == "normal":
            return rng.normal(r.get("mean", 0.0), r.get("std", 1.0), self.shape)
        ints = rng.integers(int(r.get("low", -4)), int(r.get("high", 4)), self.shape, endpoint=True)
        return np.asarray(ints, dtype=np.float64)

    def magnitude_bound(self) -> float:
        """An upper bound of ``|value|`` over the tensor without generating it (Inf when a literal
        value is not finite): the literal values' maximum, a uniform or integers recipe's larger
        end, a normal recipe's ``|mean| + NORMAL_SIGMAS * std``."""
        if self.values is not None:
            return float(np.max(np.abs(self.values), initial=0.0)) if np.isfinite(self.values).all() else math.inf
        r = self.random or {}
        dist = r["distribution"]
        if dist == "normal":
            return abs(float(r.get("mean", 0.0))) + NORMAL_SIGMAS * float(r.get("std", 1.0))
        low, high = (r.get("low", -1.0), r.get("high", 1.0)) if dist == "uniform" else (r.get("low", -4), r.get("high", 4))
        return max(abs(float(low)), abs(float(high)))

    def nonfinite_in(self, dtype: str) -> bool:
        """Whether the tensor holds NaN or ±Inf once rounded to ``dtype``: a literal non-finite
        value, or a finite one beyond the dtype's range (1e5 in float16 is Inf). Generated only
        when :meth:`magnitude_bound` exceeds the dtype's largest value."""
        if self.magnitude_bound() <= float(finfo(dtype).max):
            return False
        return not bool(np.isfinite(round_to(self.generate(), dtype)).all())


@dataclass(frozen=True)
class Case:
    """One validated case in the canonical (PyTorch) convention.

    input ``(N, C_in, *spatial)``, weight ``(C_in, C_out/groups, *kernel)`` unflipped,
    padding as per-axis ``(begin, end)`` pairs cut from the full scatter output. The shapes and
    hyper-parameters are its :class:`ConvSpec` (``spec``; ``stride`` ... ``groups``, ``rank``,
    channels and the output shape read it); the tensors' shapes are the spec's.
    """

    id: str
    file: str
    source: str
    description: str
    tags: tuple[str, ...]
    input: TensorSpec
    weight: TensorSpec
    bias: TensorSpec | None
    spec: ConvSpec
    dtypes: tuple[str, ...]
    expected_shape: tuple[int, ...] | None
    expected_values: np.ndarray | None
    expected_error: bool
    tolerance: dict[str, Any] | None
    frameworks: tuple[str, ...] | None
    frameworks_reason: str
    invalid_reasons: tuple[str, ...] = field(default=())
    # String padding (convt_conformance/model/string_padding.py): the mode as written and the output_padding
    # as written; `padding`/`output_padding` above then hold the mode's resolution.
    padding_mode: str | None = None
    mode_output_padding: tuple[int, ...] | None = None

    # the spec's fields, read through the case
    @property
    def stride(self) -> tuple[int, ...]:
        return self.spec.stride

    @property
    def padding(self) -> PadPairs:
        return self.spec.padding

    @property
    def output_padding(self) -> tuple[int, ...]:
        return self.spec.output_padding

    @property
    def dilation(self) -> tuple[int, ...]:
        return self.spec.dilation

    @property
    def groups(self) -> int:
        return self.spec.groups

    @property
    def geometry(self) -> ConvSpec:
        """The spec (its spatial rule: ``kernel``, ``out_spatial``, ``symmetric_padding``...)."""
        return self.spec

    @property
    def rank(self) -> int:
        return self.spec.rank

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    @property
    def out_channels(self) -> int:
        return self.spec.out_channels

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(N, C_out, *out_spatial)`` by the output-size rule."""
        return self.spec.output_shape

    @property
    def has_nonfinite_values(self) -> bool:
        """Whether a literal tensor holds NaN or ±Inf (random tensors are always finite)."""
        return any(t is not None and t.values is not None and not np.isfinite(t.values).all()
                   for t in (self.input, self.weight, self.bias))

    def nonfinite_tensors(self, dtype: str) -> tuple[str, ...]:
        """The tensors (``input``, ``weight``, ``bias``) that hold NaN or ±Inf in ``dtype``: as
        written, or once rounded to it (:meth:`TensorSpec.nonfinite_in`)."""
        return tuple(name for name, t in (("input", self.input), ("weight", self.weight), ("bias", self.bias))
                     if t is not None and t.nonfinite_in(dtype))

    def params(self) -> dict[str, Any]:
        """Hyper-parameters as plain data (for records and reports)."""
        return {
            "input_shape": list(self.input.shape),
            "weight_shape": list(self.weight.shape),
            "bias": self.bias is not None,
            "stride": list(self.stride),
            "padding": [list(p) for p in self.padding],
            "output_padding": list(self.output_padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            **({"padding_mode": self.padding_mode, "mode_output_padding": list(self.mode_output_padding or ())}
               if self.padding_mode else {}),
        }

    def tensors(self, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(input, weight, bias) generated in float64 then rounded to ``dtype``, as float64."""
        x = round_to(self.input.generate(), dtype)
        w = round_to(self.weight.generate(), dtype)
        b = round_to(self.bias.generate(), dtype) if self.bias is not None else None
        return x, w, b


@dataclass
class LoadResult:
    cases: list[Case]
    problems: list[CaseProblem]
    files: list[str]
