"""The oracle (convt_conformance/oracle/forward.py) as an adapter (name ``numpy``).

APIs: ``scatter`` (the oracle, the definition), ``recipe`` (zero-insert + flip + correlate)
and ``matrix`` (``V.T @ x``). All compute in float64 on inputs rounded to the dtype under
test and round the result to that dtype. ``scatter`` checks exist only for cases with
written expected values or an expected error (against itself it would prove nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, RunOutput
from convt_conformance.model.case import Case
from convt_conformance.model.dtypes import round_to
from convt_conformance.oracle import forward as ref

_FUNCS = {
    "scatter": ref.conv_transpose_scatter,
    "recipe": ref.conv_transpose_recipe,
    "matrix": ref.conv_transpose_matrix,
}
_ORACLE = "convt_conformance.oracle.forward"  # the module named in the native call
_MATRIX_LIMIT = 4_000_000  # entries of V; beyond that the dense matrix form is too large


class NumpyAdapter(Adapter):
    name = "numpy"
    module = "numpy"
    distributions = ("numpy",)
    apis = ("scatter", "recipe", "matrix")
    order = 0
    gpu_capable = False  # the reference has no GPU

    def _import(self) -> None:
        import numpy  # noqa: F401

    def applies(self, case: Case, api: str) -> bool:
        # The scatter reference is the oracle: without written expected values (or an expected
        # error) a check of it would compare it with itself, so no such check is generated.
        return api != "scatter" or case.expected_values is not None or case.expected_error

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        if api in ("matrix", "recipe") and not case.expected_error and case.has_nonfinite_values:
            return (f"the {api} formulation equals the definition only for finite values: "
                    + ("V's structural zeros" if api == "matrix" else "the inserted and padded zeros")
                    + " times Inf/NaN give NaN where the scatter adds nothing")
        if api == "matrix" and not case.expected_error:
            n_in = int(np.prod(case.input.shape[1:]))
            n_out = int(np.prod(case.output_shape[1:]))
            if n_in * n_out > _MATRIX_LIMIT:
                return f"dense matrix form would have {n_in * n_out:,} entries (limit {_MATRIX_LIMIT:,})"
        return None

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        out = _FUNCS[api](x, w, b, stride=case.stride, padding=case.padding,
                          output_padding=case.output_padding, dilation=case.dilation,
                          groups=case.groups)
        call = NativeCall(
            function=f"{_ORACLE}.conv_transpose_{api}",
            input_layout="NC" + "DHW"[3 - case.rank:], weight_layout="(C_in, C_out/g, *K)",
            output_layout="NC" + "DHW"[3 - case.rank:],
            weight_transform="none (canonical)" if api != "recipe" else "spatial flip inside the recipe",
            weight_permutation=None, weight_flip=api == "recipe",
            padding_mapping="canonical (begin, end) pairs",
            arguments={"compute_dtype": "float64"}, precision={"compute": "float64"},
        )
        return RunOutput(round_to(out, dtype), dtype, call, placed_on="cpu")

    def repro_call(self, native_call: dict[str, Any]) -> str | None:
        """The suite's own NumPy formulation (``convt_conformance.oracle.forward``; results written before
        it moved name ``adapters.numpy_reference``): the script must run from the suite's checkout
        for this one (see Adapter.repro_call)."""
        fn = native_call.get("function", "")
        name = fn.rsplit(".", 1)[-1]
        prefixes = (f"{_ORACLE}.conv_transpose_", "adapters.numpy_reference.conv_transpose_")
        if not fn.startswith(prefixes) or name.removeprefix("conv_transpose_") not in _FUNCS:
            return None
        return "\n".join([
            "import sys",
            "sys.path.insert(0, '.')  # the suite's checkout: the NumPy adapter is the suite's own code",
            "from convt_conformance.oracle import forward as ref",
            "",
            f"out = ref.{name}(x, w, b, stride=STRIDE, padding=PADDING, output_padding=OUTPUT_PADDING,",
            "    dilation=DILATION, groups=GROUPS)",
            "out = np.asarray(out, dtype=np.float64).astype(NP_DTYPE).astype(np.float64)",
        ])
