"""Gradient checks: the API columns ``<api>:grad_input``, ``<api>:grad_weight``, ``<api>:grad_bias``.

A gradient api is a forward api of the adapter plus a suffix naming the differentiated quantity.
For such a check, convt_conformance/checking/check.py calls :func:`gradient_expectation`: the cotangent ``g``
(convt_conformance/checking/cotangent.py), the float64 reference gradient on the dtype-rounded ``x, w, b, g``
(convt_conformance/oracle/gradients.py, the definition), its magnitude bound (the same gradient formula on
``|x|, |w|, |g|``) and the gradient's own term count (tolerance.terms_per_gradient). The adapter
receives ``cotangent=g`` and returns the gradient in the quantity's canonical layout
(grad_input ``(N, C_in, *S)``, grad_weight ``(C_in, C_out/g, *K)``, grad_bias ``(C_out,)``).
Invalid cases (``expected.error``) have no gradient checks; grad_bias exists only with a bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convt_conformance.checking.cotangent import cotangent
from convt_conformance.checking.tolerance import terms_per_gradient
from convt_conformance.loading.cases import Case
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.model.dtypes import round_to
from convt_conformance.oracle import gradients as grads


@dataclass
class GradientExpectation:
    quantity: str
    g: np.ndarray  # float64 cotangent, rounded to the dtype, canonical output layout
    recipe: dict[str, Any]
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
