"""Gradient checks: the API columns ``<api>:grad_input``, ``<api>:grad_weight``, ``<api>:grad_bias``.

A gradient api is a forward api of the adapter plus a suffix naming the differentiated quantity.
For such a check, conformance/check.py calls :func:`gradient_expectation`: the cotangent ``g``
(conformance/cotangent.py), the float64 reference gradient on the dtype-rounded ``x, w, b, g``
(conformance/oracle/gradients.py, the definition), its magnitude bound (the same gradient formula on
``|x|, |w|, |g|``) and the gradient's own term count (tolerance.terms_per_gradient). The adapter
receives ``cotangent=g`` and returns the gradient in the quantity's canonical layout
(grad_input ``(N, C_in, *S)``, grad_weight ``(C_in, C_out/g, *K)``, grad_bias ``(C_out,)``).
Invalid cases (``expected.error``) have no gradient checks; grad_bias exists only with a bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.cases import Case
from conformance.cotangent import cotangent
from conformance.dtypes import round_to
from conformance.oracle import gradients as grads
from conformance.tolerance import terms_per_gradient

SEPARATOR = ":"


def gradient_quantity(api: str) -> str | None:
    """``grad_input`` / ``grad_weight`` / ``grad_bias`` for a gradient api (``<api>:grad_*``), None
    for a forward one (whose name may hold ``:`` of its own, e.g. ONNX's ``ConvTranspose:auto_pad``)."""
    if SEPARATOR not in api:
        return None
    q = api.rsplit(SEPARATOR, 1)[1]
    if not q.startswith("grad_"):
        return None
    if q not in grads.GRADIENTS:
        raise ValueError(f"api {api!r}: unknown gradient {q!r}; expected one of {grads.GRADIENTS}")
    return q


def forward_api(api: str) -> str:
    """The forward api a gradient api differentiates (the api itself for a forward one)."""
    return api.rsplit(SEPARATOR, 1)[0] if gradient_quantity(api) else api


def with_gradients(apis: tuple[str, ...]) -> tuple[str, ...]:
    """``apis`` followed by the three gradient apis of each (``conv_transpose:grad_input``, ...)."""
    return tuple(apis) + tuple(f"{a}{SEPARATOR}{q}" for a in apis for q in grads.GRADIENTS)


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


@dataclass
class GradientExpectation:
    quantity: str
    g: np.ndarray  # float64 cotangent, rounded to the dtype, canonical output layout
    recipe: dict
    reference: np.ndarray  # float64 reference gradient, canonical layout
    expected: np.ndarray  # the reference, with +-Inf where its exact value overflows the dtype
    magnitude: np.ndarray  # the gradient formula on |x|, |w|, |g|
    n_terms: int


def gradient_expectation(case: Case, api: str, dtype: str, x: np.ndarray, w: np.ndarray,
                         b: np.ndarray | None) -> GradientExpectation:
    """Cotangent, reference, magnitude and term count of the gradient check of ``api`` on ``case``
    (``x, w, b`` already rounded to ``dtype``, float64, canonical layouts)."""
    q = gradient_quantity(api)
    if q is None:
        raise ValueError(f"case {case.id}: api {api!r} is not a gradient api")
    g, recipe = cotangent(case, dtype)
    kw = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
              dilation=case.dilation, groups=case.groups)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = grads.gradient(q, x, w, g, **kw)
        mag = grads.gradient(q, np.abs(x), np.abs(w), np.abs(g), **kw)
        # A gradient whose exact value lies beyond the dtype's range rounds to +-Inf (IEEE): that is
        # the correctly rounded result a framework must return (e.g. 16-bit weight gradients,
        # which sum N * prod(S) products), so it is what is expected there.
        rounded = round_to(ref, dtype)
    expected = np.where(np.isfinite(ref) & np.isinf(rounded), rounded, ref)
    return GradientExpectation(q, g, recipe, ref, expected, mag, terms_per_gradient(case, q))
