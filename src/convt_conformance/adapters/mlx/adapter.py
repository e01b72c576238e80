"""MLX adapter (the ``mlx[cpu]`` distribution: MLX's CPU backend): ``mlx.core.conv_transpose{1,2,3}d``,
``mlx.core.conv_general`` with ``input_dilation`` and ``flip=True``, and the layers
``mlx.nn.ConvTranspose{1,2,3}d``.

Native convention (MLX's documentation and signatures): channels-last input ``(N, *S, C_in)`` and
output ``(N, *S_out, C_out)``; weight ``(C_out, *K, C_in/groups)`` for all three, applied by
``conv_transpose{n}d`` without a flip (the convention probes find "in/out swap": the canonical
weight's two channel axes exchanged, no spatial flip). So the translation is a permutation:
input and output moved channels-last and back, the weight regrouped ``(C_in, C_out/g, *K) ->
(C_out, *K, C_in/g)`` (calls.py's ``native_weight``).

Columns:

- ``conv_transpose`` (``conv_transpose{n}d``): ``padding`` is one int per axis cut from both
  ends, ``output_padding`` added at the far end, ``groups`` an argument (MLX refuses groups > 1 in
  3-D: rejections.yaml). No bias argument: a case with a bias is `unsupported`.
- ``conv_general``: the forward convolution of the stride-dilated input, the user path for
  per-side pads (conv_transpose{n}d gives its results bit for bit): ``input_dilation = stride``,
  ``kernel_dilation = dilation``, window stride 1, ``padding = ([d*(k-1)-begin], [d*(k-1)-end+
  output_padding])``, ``flip=True``. No bias argument.
- ``ConvTranspose`` (``ConvTranspose{n}d``): the layer built from the case's shapes and
  hyper-parameters, its ``weight`` (and ``bias``) replaced by ``Module.update``; the bias is the
  layer's own (``y + self.bias``). The layer has no ``groups`` argument.

Gradients (``<api>:grad_input`` / ``:grad_weight`` / ``:grad_bias``): ``mx.vjp`` of the same call
with the cotangent; the layer's is a function of ``(x, weight[, bias])`` that updates the layer's
parameters and calls it (what ``mlx.nn.value_and_grad`` does). The weight gradient comes back in
MLX's layout and is permuted to the canonical one.

Every call runs on the CPU stream (``mx.stream(mx.cpu)``), and ``mx.eval`` evaluates its result
inside the call (MLX is lazy). MLX's CPU backend refuses a float64 convolution with an input or
kernel dilation or with groups > 1 when it evaluates it ("[Convolution::eval] got unsupported data
type."): those float64 checks are `unsupported` in MLX's words (rejections.yaml); the float64
convolutions it does run are computed in float32 (known_disagreements.yaml, mlx-float64-in-float32).

The native call is convt_conformance/adapters/mlx/calls.py's ``mlx_conv``; the adapter records it
(``arguments["call"]``) with its keyword arguments (``arguments["call_kwargs"]``): the reproducer
(repro.py) embeds the same function.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.mlx import calls as mlx_calls
from convt_conformance.model.apis import (
    forward_api,
    gradient_applies,
    gradient_label,
    gradient_quantity,
    with_gradients,
)

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

_SPATIAL = {1: "L", 2: "HW", 3: "DHW"}
_NO_BIAS = ("{fn} has no bias argument (input, weight, stride, padding, {dil}, groups): MLX adds a bias in "
            "mlx.nn.ConvTranspose{{1,2,3}}d, the ConvTranspose column")


def _layout(rank: int, channels: str) -> str:
    """``N<spatial><channels>`` (``NHWC``), MLX's channels-last layout."""
    return f"N{_SPATIAL.get(rank, '?')}{channels}"


class MlxAdapter(Adapter):
    name = "mlx"
    module = "mlx.core"  # the package `mlx` has no __version__; its core module has
    distributions = ("mlx",)
    apis = with_gradients(mlx_calls.MLX_APIS)
    order = 90
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    gpu_capable = False  # mlx[cpu]: the CPU backend (MLX's GPU backends are Metal and the mlx-cuda build)

    @classmethod
    def release_requirements(cls, distribution: str, version: str) -> tuple[str, ...]:
        """mlx and its CPU backend ``mlx-cpu`` are released in lock-step: ``mlx[cpu]`` pins both."""
        return (f"mlx[cpu]=={version}",) if distribution == "mlx" else (f"{distribution}=={version}",)

    def _import(self) -> None:
        import mlx.core as mx

        mx.array([0.0])  # the backend loads

    def devices(self) -> list[str]:
        return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        """MLX's CPU device as the default (every call also runs inside ``mx.stream(mx.cpu)``); MLX
        has no precision flag for CPU convolutions (``strict`` and ``default`` are the same)."""
        import mlx.core as mx

        mx.set_default_device(mx.cpu)
        metal = getattr(mx, "metal", None)
        cuda = getattr(mx, "cuda", None)
        return {"default_device": str(mx.default_device()), "default_stream": str(mx.default_stream(mx.cpu)),
                "metal_available": bool(metal.is_available()) if metal is not None else None,
                "cuda_available": bool(cuda.is_available()) if cuda is not None else None}

    def probes(self) -> list[ProbeCall]:
        # MLX's weight (C_out, KH, KW, C_in): the naive call puts the probe weight's first axis in
        # the C_out slot and its second in the C_in slot; channels-last only.
        def naive(x: np.ndarray, w: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
            if layout != "channels-last":
                raise ValueError("MLX's convolutions take (N, H, W, C) input only")
            # calls.py takes canonical arrays: the canonical weight whose native_weight is the naive one
            return x, np.swapaxes(w, 0, 1)

        def ct(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            xc, wc = naive(x, w, layout)
            return mlx_calls.mlx_conv(xc, wc, api="conv_transpose", stride=list(stride), padding=[0, 0],
                                      dilation=[1, 1], output_padding=[0, 0], dtype="float32")[0]

        def cg(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            xc, wc = naive(x, w, layout)
            k = w.shape[2:]
            return mlx_calls.mlx_conv(xc, wc, api="conv_general", stride=[1, 1],
                                      padding=[[kk - 1 for kk in k], [kk - 1 for kk in k]], dilation=[1, 1],
                                      input_dilation=list(stride), dtype="float32")[0]
        declared = ("in/out swap", "channels-last")
        return [ProbeCall("conv_transpose2d", declared, ct), ProbeCall("conv_general", declared, cg)]

    def api_label(self, api: str, rank: int) -> str:
        base = forward_api(api)
        label = {"conv_transpose": f"conv_transpose{rank}d", "ConvTranspose": f"ConvTranspose{rank}d"}.get(base, base)
        return gradient_label(label, api)

    @staticmethod
    def native_name(api: str, rank: int) -> str:
        return {"conv_transpose": f"mlx.core.conv_transpose{rank}d", "conv_general": "mlx.core.conv_general",
                "ConvTranspose": f"mlx.nn.ConvTranspose{rank}d"}[api]

    def applies(self, case: Case, api: str) -> bool:
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        api = forward_api(api)
        rank = case.rank
        if rank not in (1, 2, 3) and not case.expected_error:
            return f"spatial rank {rank}: MLX has conv_transpose1d/2d/3d and ConvTranspose1d/2d/3d only"
        name = self.native_name(api, rank if rank in (1, 2, 3) else 2)
        if api in ("conv_transpose", "conv_general") and case.bias is not None:
            dil = "dilation, output_padding" if api == "conv_transpose" else "kernel_dilation, input_dilation, flip"
            return _NO_BIAS.format(fn=name, dil=dil)
        if api == "ConvTranspose":
            if case.groups != 1:
                return (f"groups={case.groups}: {name} has no groups argument (in_channels, out_channels, "
                        "kernel_size, stride, padding, dilation, output_padding, bias)")
            why = self._layer_cannot_take(case, name)
            if why:
                return why
        if api in ("conv_transpose", "ConvTranspose") and len(case.padding) == rank:
            if case.geometry.symmetric_padding is None:
                why = (f"unequal (begin, end) padding pairs {[list(p) for p in case.padding]}: {name}'s `padding` is "
                       "one int per axis, cut from both ends (per-side pads are conv_general's, its own column)")
                if case.padding_mode:
                    why = f"padding {case.padding_mode!r}: {why}; MLX has no padding strings"
                return why
        return None

    @staticmethod
    def _layer_cannot_take(case: Case, name: str) -> str | None:
        """The layer creates its weight ``(out_channels, *kernel_size, in_channels)`` with
        in_channels = the input's channels, and its bias ``(out_channels,)``: a weight of another
        C_in or a bias of another length is none of its parameters (``Module.update`` would replace
        them unchecked: the layer would not be what ran)."""
        if len(case.weight.shape) != len(case.input.shape):
            return (f"{name} creates its weight (out_channels, *kernel_size, in_channels) of the input's rank "
                    f"({len(case.input.shape)}): a weight of rank {len(case.weight.shape)} is not one of its parameters")
        if len(case.weight.shape) > 1 and case.weight.shape[0] != case.in_channels:
            return (f"{name} creates its weight with C_in = in_channels ({case.in_channels}): a weight with C_in "
                    f"{case.weight.shape[0]} is not one of its parameters")
        if case.bias is not None and case.bias.shape != (case.out_channels,):
            return (f"{name} creates its bias of shape (out_channels,) = ({case.out_channels},): a bias of shape "
                    f"{list(case.bias.shape)} is not one of its parameters")
        return None

    # -- the native call -------------------------------------------------------------------------

    @staticmethod
    def _kwargs(case: Case, api: str, w_shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
        """The keyword arguments of calls.py's ``mlx_conv``: plain literals, a pure function of the
        case, the column and the dtype. Invalid cases get their hyper-parameters as given (MLX is
        the one to reject them); an invalid case with unequal pairs passes the begin values."""
        stride = [int(s) for s in case.stride]
        dilation = [int(d) for d in case.dilation]
        if api == "conv_general":
            k = [int(v) for v in w_shape[2:]]
            low = [d * (kk - 1) - int(pb) for d, kk, (pb, _) in zip(dilation, k, case.padding)]
            high = [d * (kk - 1) - int(pe) + int(op) for d, kk, (_, pe), op in
                    zip(dilation, k, case.padding, case.output_padding)]
            return {"api": api, "stride": [1] * len(stride), "padding": [low, high], "dilation": dilation,
                    "input_dilation": stride, "groups": int(case.groups), "dtype": dtype}
        sym = case.geometry.symmetric_padding if len(case.padding) == len(stride) else None
        padding = list(sym) if sym is not None else [int(p[0]) for p in case.padding]
        return {"api": api, "stride": stride, "padding": [int(p) for p in padding], "dilation": dilation,
                "output_padding": [int(p) for p in case.output_padding], "groups": int(case.groups), "dtype": dtype}

    def _native_call(self, case: Case, api: str, kwargs: dict[str, Any], has_bias: bool,
                     quantity: str | None) -> NativeCall:
        rank = len(case.input.shape) - 2
        name = self.native_name(api, rank if rank in (1, 2, 3) else 2)
        if api == "conv_general":
            mapping = ("window stride 1, input_dilation = stride, kernel_dilation = dilation, padding = "
                       "([d*(k-1)-begin], [d*(k-1)-end+output_padding]) of the stride-dilated input, flip=True")
            function = f"{name}(..., input_dilation=stride, flip=True)"
        else:
            mapping = "padding=p (symmetric, cut from both ends); output_padding passed as is"
            function = name
        arguments: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in ("api", "dtype")}
        arguments.update(bias=("the layer's bias (y + self.bias)" if api == "ConvTranspose" else "none") if has_bias
                         else None, dtype=kwargs["dtype"], stream="mx.stream(mx.cpu)", placed_on=None,
                         evaluated="mx.eval inside the call")
        transform = "regroup (C_in, C_out/g, *K) -> (C_out, *K, C_in/g); no flip"
        if quantity:
            wrt = mlx_calls.WRT[quantity]
            differentiated = {"input": "x", "weight": "w (MLX layout)" if api != "ConvTranspose" else "layer.weight",
                              "bias": "layer.bias"}[wrt]
            function = (f"mx.vjp({function}, [x, w{', b' if has_bias else ''}], [g])[1][{list(mlx_calls.WRT).index(quantity)}]")
            arguments.update(method="mx.vjp" + (" of a function updating the layer's parameters (Module.update)"
                                                 if api == "ConvTranspose" else ""),
                             differentiated=differentiated, cotangent_layout=_layout(rank, "C"),
                             gradient_to_canonical=("inverse regroup (C_out, *K, C_in/g) -> (C_in, C_out/g, *K)"
                                                    if wrt == "weight" else "channels-first" if wrt == "input"
                                                    else "identity"))
            kwargs = {**kwargs, "wrt": wrt}
        arguments.update(call="mlx_conv", call_kwargs=dict(kwargs))
        return NativeCall(
            function=function, input_layout=_layout(rank, "C"), weight_layout="(C_out, *K, C_in/groups)",
            output_layout=_layout(rank, "C"), weight_transform=transform,
            weight_permutation=[1, *range(2, rank + 2), 0] if case.groups == 1 else None, weight_flip=False,
            padding_mapping=mapping, arguments=arguments,
            precision={"flags": "none: MLX has no precision setting for CPU convolutions"})

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if device != "cpu":
            raise ValueError(f"{self.name} runs on MLX's CPU backend only, not on {device!r}")
        quantity = gradient_quantity(api)
        base = forward_api(api)
        if quantity and cotangent is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        kwargs = self._kwargs(case, base, w.shape, dtype)
        call = self._native_call(case, base, kwargs, b is not None, quantity)
        try:
            out, facts = mlx_calls.mlx_conv(x, w, b, cotangent, **call.arguments["call_kwargs"])
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = {"device": facts["device"], "stream": facts["stream"]}
        placed = "cpu" if str(facts["device"]).startswith("Device(cpu") else str(facts["device"])
        return RunOutput(out, str(facts["dtype"]), call, placed_on=placed)

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The call described without making it (a pure function of the case); ``api`` may be the
        column's label as a results file records it (``conv_transpose1d:grad_weight``)."""
        base = re.sub(r"\A(conv_transpose|ConvTranspose)[123]d\Z", r"\1", forward_api(api))
        if base not in mlx_calls.MLX_APIS:
            return None
        return self._native_call(case, base, self._kwargs(case, base, case.weight.shape, dtype),
                                 case.bias is not None, gradient_quantity(api))

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded MLX call, made as the adapter makes it: convt_conformance/adapters/mlx/repro.py."""
        from convt_conformance.adapters.mlx.repro import call_source_of

        return call_source_of(native_call, None)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """``mx.vjp`` of the recorded call: convt_conformance/adapters/mlx/repro.py."""
        from convt_conformance.adapters.mlx.repro import call_source_of

        return call_source_of(native_call, quantity)
