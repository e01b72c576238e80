"""The one configuration spec of a transposed convolution, :class:`ConvSpec`, and its validity
rules, :meth:`ConvSpec.problems`: case loading (convt_conformance/loading/case_checks.py), sweep expansion
(convt_conformance/loading/sweep.py) and the reference (conformance/oracle/) all ask it.

Convention (see docs/case-format.md): PyTorch's. Input ``(N, C_in, *S)``, weight
``(C_in, C_out/groups, *K)``, bias ``(C_out,)``; per spatial axis
``out = (in - 1) * stride - pad_begin - pad_end + dilation * (k - 1) + output_padding + 1``
where a symmetric ``padding: p`` means ``pad_begin = pad_end = p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PadPairs = tuple[tuple[int, int], ...]


def per_axis(value: int | Sequence[int], rank: int) -> tuple[int, ...]:
    """Expand an int (or a per-axis list) to one int per spatial axis."""
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


def pad_pairs(value: int | Sequence[int | Sequence[int]], rank: int) -> PadPairs:
    """Normalise ``padding`` (int, per-axis ints, or per-axis [begin, end]) to pairs."""
    if isinstance(value, int):
        return ((value, value),) * rank
    pairs = []
    for v in value:
        if isinstance(v, int):
            pairs.append((v, v))
        else:
            pairs.append((int(v[0]), int(v[1])))
    return tuple(pairs)


@dataclass(frozen=True)
class ConvSpec:
    """Shapes and normalised hyper-parameters of one transposed convolution (PyTorch convention).

    Any values are representable (an invalid case has a spec too); :meth:`problems` says whether
    they describe a valid transposed convolution."""

    input_shape: tuple[int, ...]  # (N, C_in, *S)
    weight_shape: tuple[int, ...]  # (C_in, C_out/groups, *K)
    bias_shape: tuple[int, ...] | None  # (C_out,), or None without a bias
    stride: tuple[int, ...]
    padding: PadPairs
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1

    @classmethod
    def of_call(cls, x_shape: Sequence[int], w_shape: Sequence[int], b_shape: Sequence[int] | None, *,
                stride: Sequence[int], padding: Sequence[Sequence[int]], output_padding: Sequence[int],
                dilation: Sequence[int], groups: int = 1) -> ConvSpec:
        """The spec of a call's arguments (array shapes, per-axis parameters)."""
        return cls(tuple(int(n) for n in x_shape), tuple(int(n) for n in w_shape),
                   None if b_shape is None else tuple(int(n) for n in b_shape),
                   tuple(stride), tuple((int(p[0]), int(p[1])) for p in padding), tuple(output_padding),
                   tuple(dilation), int(groups))

    @property
    def rank(self) -> int:
        """Spatial axes of the input."""
        return len(self.input_shape) - 2

    @property
    def in_spatial(self) -> tuple[int, ...]:
        return tuple(self.input_shape[2:])

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weight_shape[2:])

    @property
    def in_channels(self) -> int:
        return self.input_shape[1] if len(self.input_shape) > 1 else 0

    @property
    def out_channels(self) -> int:
        return self.weight_shape[1] * self.groups if len(self.weight_shape) > 1 else 0

    @property
    def full_extent(self) -> tuple[int, ...]:
        """Length of the uncropped scatter output per axis: ``(in-1)*s + d*(k-1) + 1``."""
        return tuple(
            (n - 1) * s + d * (k - 1) + 1
            for n, s, d, k in zip(self.in_spatial, self.stride, self.dilation, self.kernel)
        )

    @property
    def out_spatial(self) -> tuple[int, ...]:
        """Output spatial shape by the rule above (may be <= 0 for invalid configurations)."""
        return tuple(
            f - pb - pe + op
            for f, (pb, pe), op in zip(self.full_extent, self.padding, self.output_padding)
        )

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(N, C_out, *out_spatial)`` by the output-size rule."""
        return (self.input_shape[0], self.out_channels, *self.out_spatial)

    @property
    def symmetric_padding(self) -> tuple[int, ...] | None:
        """Per-axis ``p`` when every pair is ``(p, p)``, else None."""
        if all(b == e for b, e in self.padding):
            return tuple(b for b, _ in self.padding)
        return None

    def structure_problems(self) -> list[str]:
        """The problems that make every other rule meaningless: ranks and groups."""
        out: list[str] = []
        x, w = self.input_shape, self.weight_shape
        if len(x) < 3 or len(x) > 5:
            out.append(f"input must have rank 3, 4 or 5 (N, C, 1-3 spatial axes), got shape {list(x)}")
        if len(w) != len(x):
            out.append(f"weight rank {len(w)} differs from input rank {len(x)}")
        if self.groups < 1:
            out.append(f"groups must be >= 1, got {self.groups}")
        return out

    def problems(self) -> list[str]:
        """Why this configuration is not a valid transposed convolution (empty list when it is):
        the one statement of the rules (their ids: convt_conformance/checking/invalid_rules.yaml)."""
        out = self.structure_problems()
        if out:
            return out
        x, w = self.input_shape, self.weight_shape
        if w[0] != x[1]:
            out.append(f"weight C_in {w[0]} != input C_in {x[1]}")
        elif x[1] % self.groups:
            out.append(f"C_in {x[1]} is not divisible by groups {self.groups}")
        out.extend(self._geometry_problems())
        if self.bias_shape is not None and self.bias_shape != (w[1] * self.groups,):
            out.append(f"bias shape {list(self.bias_shape)} != (C_out,) = ({w[1] * self.groups},)")
        return out

    def _geometry_problems(self) -> list[str]:
        out: list[str] = []
        r = self.rank
        for name, seq in (("stride", self.stride), ("dilation", self.dilation),
                          ("output_padding", self.output_padding), ("padding", self.padding),
                          ("kernel", self.kernel)):
            if len(seq) != r:
                out.append(f"{name} has {len(seq)} axes but the input has {r} spatial axes")
        if out:
            return out
        if any(s < 1 for s in self.stride):
            out.append(f"stride must be >= 1, got {list(self.stride)}")
        if any(d < 1 for d in self.dilation):
            out.append(f"dilation must be >= 1, got {list(self.dilation)}")
        if any(b < 0 or e < 0 for b, e in self.padding):
            out.append(f"padding must be >= 0, got {[list(p) for p in self.padding]}")
        if any(op < 0 for op in self.output_padding):
            out.append(f"output_padding must be >= 0, got {list(self.output_padding)}")
        for ax, (op, s, d) in enumerate(zip(self.output_padding, self.stride, self.dilation)):
            if op >= max(s, d) and s >= 1 and d >= 1:
                out.append(
                    f"output_padding[{ax}]={op} must be smaller than max(stride, dilation)={max(s, d)}"
                )
        if any(n < 1 for n in self.in_spatial):
            out.append(f"input spatial extent must be >= 1, got {list(self.in_spatial)}")
        if any(k < 1 for k in self.kernel):
            out.append(f"kernel extent must be >= 1, got {list(self.kernel)}")
        if not out and any(o < 1 for o in self.out_spatial):
            out.append(f"output size must be positive, the rule gives {list(self.out_spatial)}")
        return out
