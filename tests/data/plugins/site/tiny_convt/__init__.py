"""A minimal outside framework plugged in by entry point (README "Writing an adapter").

Its one API calls ``convt_conformance.oracle.forward.conv_transpose_scatter`` as if it were a vendor's native
transposed convolution (a real plugin calls its framework here)."""

from __future__ import annotations

from convt_conformance.adapters.base import Adapter, NativeCall, RunOutput
from convt_conformance.model.dtypes import round_to
from convt_conformance.oracle.forward import conv_transpose_scatter


class TinyAdapter(Adapter):
    name = "tiny"
    module = "tiny_convt"
    distributions = ("tiny-convt",)
    apis = ("conv_transpose",)
    dtypes = ("float32", "float64")
    gpu_capable = False

    def _import(self):
        import tiny_convt  # noqa: F401

    def supports(self, case, api, device, dtype):
        return None if case.rank == 2 else "tiny has 2-D transposed convolution only"

    def run(self, case, api, device, dtype, x, w, b):
        y = conv_transpose_scatter(x, w, b, stride=case.stride, padding=case.padding,
                                   output_padding=case.output_padding, dilation=case.dilation, groups=case.groups)
        call = NativeCall(function="tiny_convt.conv_transpose", input_layout="NCHW",
                          weight_layout="(C_in, C_out/g, kH, kW)", output_layout="NCHW",
                          weight_transform="identity", padding_mapping="(begin, end) pairs as is")
        return RunOutput(round_to(y, dtype), dtype, call, placed_on="cpu")
