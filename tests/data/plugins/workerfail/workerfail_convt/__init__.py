"""Test plugin: a framework whose import works in the preflight's child but, in the xdist
workers only (``PYTEST_XDIST_WORKER`` is set there), aborts (``WORKERFAIL_MODE=abort``),
segfaults (``segfault``), hangs (``hang``) or raises (``raise``); ``none`` (the default) imports
everywhere. Its one API computes the definition, like ``tiny`` (tests/data/plugins/site)."""

from __future__ import annotations

from convt_conformance.adapters.base import Adapter, NativeCall, RunOutput
from convt_conformance.model.dtypes import round_to
from convt_conformance.oracle.forward import conv_transpose_scatter


class WorkerFailAdapter(Adapter):
    name = "workerfail"
    module = "workerfail_convt"
    distributions = ("workerfail-convt",)
    apis = ("conv_transpose",)
    dtypes = ("float32", "float64")
    gpu_capable = False

    def _import(self):
        from workerfail_convt import native  # noqa: F401  (fails as WORKERFAIL_MODE says, in workers)

    def run(self, case, api, device, dtype, x, w, b):
        y = conv_transpose_scatter(x, w, b, stride=case.stride, padding=case.padding,
                                   output_padding=case.output_padding, dilation=case.dilation, groups=case.groups)
        call = NativeCall(function="workerfail_convt.conv_transpose", input_layout="NCHW",
                          weight_layout="(C_in, C_out/g, kH, kW)", output_layout="NCHW",
                          weight_transform="identity", padding_mapping="(begin, end) pairs as is")
        return RunOutput(round_to(y, dtype), dtype, call, placed_on="cpu")
