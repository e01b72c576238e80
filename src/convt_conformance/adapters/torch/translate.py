"""The torch adapter's translation of a case into the keyword arguments of its calls.py functions
(torch's convention is the canonical one: nothing moves), shared by the plain calls, the gradients
and the execution paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

HYPER = ("stride", "padding", "output_padding", "groups", "dilation")


def call_kwargs(case: Case, device: str, dtype: str) -> dict[str, Any]:
    """The keyword arguments of calls.py's functions for ``case``: the identity translation
    (canonical layout; symmetric ``padding=p``; an invalid case with unequal pairs passes the
    begin values, torch has nothing else), ``device`` ``cuda`` / ``cpu``, the dtype's name. Plain
    literals (recorded as ``call_kwargs``). Shared by the plain call, the gradients and the paths."""
    sym = case.geometry.symmetric_padding
    padding = list(sym) if sym is not None else [p[0] for p in case.padding]
    return dict(stride=[int(v) for v in case.stride], padding=[int(v) for v in padding],
                output_padding=[int(v) for v in case.output_padding], groups=int(case.groups),
                dilation=[int(v) for v in case.dilation], device="cuda" if device == "gpu" else "cpu", dtype=dtype)


def placed(device: str) -> str:
    """``cpu`` / ``gpu`` from the torch device string the output lives on (``cuda:0`` -> ``gpu``)."""
    kind = device.split(":", 1)[0]
    return "gpu" if kind == "cuda" else kind
