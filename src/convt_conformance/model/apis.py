"""API names: a forward api of an adapter, and its gradient apis ``<api>:grad_input``,
``<api>:grad_weight``, ``<api>:grad_bias`` (the differentiated quantity after the last ``:``).
Adapters declare their columns with these names; the checks read them back."""

from __future__ import annotations

from convt_conformance.model.case import Case

#: the differentiated quantities, in the order gradient apis are listed
GRADIENTS = ("grad_input", "grad_weight", "grad_bias")

SEPARATOR = ":"


def gradient_quantity(api: str) -> str | None:
    """``grad_input`` / ``grad_weight`` / ``grad_bias`` for a gradient api (``<api>:grad_*``), None
    for a forward one (whose name may hold ``:`` of its own, e.g. ONNX's ``ConvTranspose:auto_pad``)."""
    if SEPARATOR not in api:
        return None
    q = api.rsplit(SEPARATOR, 1)[1]
    if not q.startswith("grad_"):
        return None
    if q not in GRADIENTS:
        raise ValueError(f"api {api!r}: unknown gradient {q!r}; expected one of {GRADIENTS}")
    return q


def forward_api(api: str) -> str:
    """The forward api a gradient api differentiates (the api itself for a forward one)."""
    return api.rsplit(SEPARATOR, 1)[0] if gradient_quantity(api) else api


def with_gradients(apis: tuple[str, ...]) -> tuple[str, ...]:
    """``apis`` followed by the three gradient apis of each (``conv_transpose:grad_input``, ...)."""
    return tuple(apis) + tuple(f"{a}{SEPARATOR}{q}" for a in apis for q in GRADIENTS)


def gradient_label(forward_label: str, api: str) -> str:
    """The forward api's label plus the gradient suffix of ``api`` (unchanged for forward apis)."""
    q = gradient_quantity(api)
    return forward_label if q is None else f"{forward_label}{SEPARATOR}{q}"


def gradient_applies(case: Case, api: str) -> bool:
    """Forward apis: always; gradients: valid cases only, grad_bias only for cases with a bias."""
    q = gradient_quantity(api)
    if q is None:
        return True
    return not case.expected_error and (q != "grad_bias" or case.bias is not None)


def not_applicable_reason(case: Case, api: str) -> str | None:
    """Why a gradient check of ``api`` on ``case`` means nothing (run_check called directly, not
    through the plugin's ``applies`` filter), else None."""
    if gradient_applies(case, api):
        return None
    if case.expected_error:
        return "an invalid case (expected.error) has no gradient"
    return "the case has no bias: there is no bias gradient"
