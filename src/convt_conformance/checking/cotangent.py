"""The cotangent ``g`` (the gradient of the loss with respect to the output) of a gradient check.

Recipe, a pure function of (case, dtype): shape = the case's output ``(N, C_out, *out)``; seed =
CRC32 of ``"<case id>:cotangent"`` (mod 2**31; like convt_conformance/loading/sweep.py seeds tensors: stable
across machines and runs); ``numpy.random.default_rng(seed)``;

- ``integers`` in ``[-3, 3]`` when every finite value of the case's input, weight and bias is an
  integer (the documents' examples, integer sweeps, most edge cases): products and sums of small
  integers stay exact in every dtype, so a gradient check of such a case is exact up to overflow;
- ``uniform`` on ``[-1, 1]`` otherwise;

then rounded to the check's dtype (the framework receives exactly the float64 values the
reference uses). The recipe is stored in the check record (``record["cotangent"]``).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from convt_conformance.loading.cases import Case
from convt_conformance.model.dtypes import round_to

INTEGER_RANGE = (-3, 3)


def _integer_valued(case: Case) -> bool:
    for spec in (case.input, case.weight, case.bias):
        if spec is None:
            continue
        v = spec.generate()
        v = v[np.isfinite(v)]
        if v.size and not np.array_equal(v, np.round(v)):
            return False
    return True


def cotangent_recipe(case: Case) -> dict[str, Any]:
    """The distribution, range, seed and shape of the case's cotangent (dtype-independent)."""
    seed = zlib.crc32(f"{case.id}:cotangent".encode()) % (2**31)
    shape = [int(s) for s in case.output_shape]
    if _integer_valued(case):
        return {"distribution": "integers", "low": INTEGER_RANGE[0], "high": INTEGER_RANGE[1],
                "seed": seed, "shape": shape, "seed_from": "crc32(case id + ':cotangent')"}
    return {"distribution": "uniform", "low": -1.0, "high": 1.0, "seed": seed, "shape": shape,
            "seed_from": "crc32(case id + ':cotangent')"}


def cotangent(case: Case, dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``(g, recipe)``: ``g`` float64 of the output's canonical shape, rounded to ``dtype``."""
    r = cotangent_recipe(case)
    rng = np.random.default_rng(r["seed"])
    if r["distribution"] == "integers":
        g = rng.integers(r["low"], r["high"], r["shape"], endpoint=True).astype(np.float64)
    else:
        g = rng.uniform(r["low"], r["high"], r["shape"])
    return round_to(g, dtype), {**r, "rounded_to": dtype}
