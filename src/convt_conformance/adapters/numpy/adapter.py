"""The oracle (convt_conformance/oracle/forward.py) as an adapter (name ``numpy``).

APIs: ``scatter`` (the oracle, the definition), ``recipe`` (zero-insert + flip + correlate)
and ``matrix`` (``V.T @ x``). All compute in float64 on inputs rounded to the dtype under
test and round the result to that dtype. ``scatter`` checks exist only for cases with
written expected values or an expected error (against itself it would prove nothing).

The record names the formulation in ``arguments["call"]`` (``conv_transpose_<api>``, a function
of convt_conformance/oracle/forward.py) with its keyword arguments in ``arguments["call_kwargs"]``;
the reproducer calls that function (from the suite's checkout) with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, RunOutput
from convt_conformance.adapters.call_source import is_literal, literal
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
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    gpu_capable = False  # the reference has no GPU

    def _import(self) -> None:
        import numpy  # noqa: F401

    def applies(self, case: Case, api: str) -> bool:
        # The scatter reference is the oracle: without written expected values (or an expected
        # error) a check of it would compare it with itself, so no such check is generated.
        return api != "scatter" or case.expected_values is not None or case.expected_error

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        bad = case.nonfinite_tensors(dtype) if api in ("matrix", "recipe") and not case.expected_error else ()
        if bad:  # as written, or beyond the dtype's range: rounded to it, Inf
            return (f"the {api} formulation equals the definition only for finite values: "
                    + ("V's structural zeros" if api == "matrix" else "the inserted and padded zeros")
                    + f" times Inf/NaN give NaN where the scatter adds nothing (in {dtype}, "
                    + " and ".join(bad) + " hold" + ("s" if len(bad) == 1 else "") + " NaN or ±Inf)")
        if api == "matrix" and not case.expected_error:
            n_in = int(np.prod(case.input.shape[1:]))
            n_out = int(np.prod(case.output_shape[1:]))
            if n_in * n_out > _MATRIX_LIMIT:
                return f"dense matrix form would have {n_in * n_out:,} entries (limit {_MATRIX_LIMIT:,})"
        return None

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        kwargs = call_kwargs(case)
        out = _FUNCS[api](x, w, b, **kwargs)
        call = NativeCall(
            function=f"{_ORACLE}.conv_transpose_{api}",
            input_layout="NC" + "DHW"[3 - case.rank:], weight_layout="(C_in, C_out/g, *K)",
            output_layout="NC" + "DHW"[3 - case.rank:],
            weight_transform="none (canonical)" if api != "recipe" else "spatial flip inside the recipe",
            weight_permutation=None, weight_flip=api == "recipe",
            padding_mapping="canonical (begin, end) pairs",
            arguments={"compute_dtype": "float64", "call": f"conv_transpose_{api}", "call_kwargs": kwargs},
            precision={"compute": "float64"},
        )
        return RunOutput(round_to(out, dtype), dtype, call, placed_on="cpu")

    def repro_call(self, native_call: dict[str, Any]) -> str | None:
        """The suite's own NumPy formulation the record names (``arguments["call"]``: a function
        ``conv_transpose_<api>`` of ``convt_conformance.oracle.forward``), called with the recorded
        keyword arguments as literals: the script must run from the suite's checkout for this one
        (see Adapter.repro_call). None for a record naming no formulation, or holding an argument
        that is not a plain literal."""
        a = native_call.get("arguments")
        if not isinstance(a, dict):
            return None
        name, kwargs = a.get("call"), a.get("call_kwargs")
        if name not in [f"conv_transpose_{api}" for api in _FUNCS] or not isinstance(kwargs, dict) \
                or set(kwargs) != set(_KWARGS) or not is_literal(kwargs):
            return None
        args = ", ".join(f"{k}={literal(kwargs[k])}" for k in _KWARGS)
        return "\n".join([
            "import sys",
            "sys.path.insert(0, '.')  # the suite's checkout: the NumPy adapter is the suite's own code",
            "from convt_conformance.oracle import forward as ref",
            "",
            f"out = ref.{name}(x, w, b, {args})",
            "out = np.asarray(out, dtype=np.float64).astype(NP_DTYPE).astype(np.float64)",
        ])


_KWARGS = ("stride", "padding", "output_padding", "dilation", "groups")


def call_kwargs(case: Case) -> dict[str, Any]:
    """The formulations' keyword arguments for ``case``, as plain literals: the canonical
    hyper-parameters (``padding`` as ``(begin, end)`` pairs)."""
    return {"stride": [int(v) for v in case.stride], "padding": [[int(b), int(e)] for b, e in case.padding],
            "output_padding": [int(v) for v in case.output_padding],
            "dilation": [int(v) for v in case.dilation], "groups": int(case.groups)}
