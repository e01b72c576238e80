"""Hyper-parameter normalisation and the transposed-convolution output-size rule.

Convention (see CASE_FORMAT.md): PyTorch's. Per spatial axis
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
class Geometry:
    """Normalised hyper-parameters of one transposed convolution (PyTorch convention)."""

    in_spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: PadPairs
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.in_spatial)

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
    def symmetric_padding(self) -> tuple[int, ...] | None:
        """Per-axis ``p`` when every pair is ``(p, p)``, else None."""
        if all(b == e for b, e in self.padding):
            return tuple(b for b, _ in self.padding)
        return None

    def problems(self) -> list[str]:
        """Why this configuration is invalid (empty list when it is valid)."""
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
