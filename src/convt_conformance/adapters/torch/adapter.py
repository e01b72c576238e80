"""PyTorch adapter: ``torch.nn.functional.conv_transpose{1,2,3}d`` and ``nn.ConvTranspose{1,2,3}d``.

PyTorch's native convention IS the canonical one: NC(D)(H)W input, weight
``(C_in, C_out/groups, *K)`` without flip, symmetric ``padding`` cut from both ends and
``output_padding`` added at the far end. The translation is the identity; unequal
``(begin, end)`` padding pairs cannot be expressed natively and are unsupported.

Gradient apis (``<api>:grad_input`` / ``:grad_weight`` / ``:grad_bias``): ``torch.autograd.grad``
of the same call with the cotangent as ``grad_outputs``; torch's layout is the canonical one.

The native calls are convt_conformance/adapters/torch/calls.py's functions; the adapter picks one,
passes the case's hyper-parameters and records which (``arguments["call"]``) with what
(``arguments["call_kwargs"]``): the reproducer (repro.py) embeds the same function.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.torch import calls as torch_calls
from convt_conformance.adapters.torch import paths as torch_paths
from convt_conformance.adapters.torch.translate import HYPER, call_kwargs, placed
from convt_conformance.model.apis import (
    forward_api,
    gradient_applies,
    gradient_label,
    gradient_quantity,
    with_gradients,
)

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
def torch_onednn_dtypes() -> list[str]:
    """The 16-bit dtypes whose CPU convolutions torch hands to oneDNN (mkldnn) here: ``bf16`` where
    oneDNN's ISA has AVX-512 (or AVX2-VNNI-2), ``fp16`` where it has AVX-512 FP16 (or AMX-FP16),
    as torch itself decides (``torch.ops.mkldnn._is_mkldnn_*_supported``; ONEDNN_MAX_CPU_ISA
    lowers it); elsewhere torch's own kernels (col2im) run. torch is imported."""
    import torch

    if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
        return []
    return [d for d, yes in (("bf16", torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                             ("fp16", torch.ops.mkldnn._is_mkldnn_fp16_supported())) if yes]


class TorchAdapter(Adapter):
    name = "torch"
    module = "torch"
    distributions = ("torch",)
    # functional / module, their gradients (":grad_input", ...) and execution paths ("@compile", ...)
    apis = (*with_gradients(("conv_transpose", "ConvTranspose")), *torch_paths.PATH_APIS)
    order = 10
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)

    def probes(self) -> list[ProbeCall]:
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            if layout != "channels-first":
                raise ValueError("torch's conv_transpose2d takes NCHW only")
            return torch_calls.conv_transpose(x, w, None, stride=list(stride), padding=[0, 0], output_padding=[0, 0],
                                              groups=1, dilation=[1, 1], device="cpu", dtype=str(x.dtype))[0]
        return [ProbeCall("conv_transpose2d", ("identity", "channels-first"), call)]

    def _import(self) -> None:
        import torch  # noqa: F401

    def devices(self) -> list[str]:
        import torch

        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        import torch

        if precision == "strict":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.set_float32_matmul_precision("highest")
        return {
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "intra_op_threads": torch.get_num_threads(),  # OMP_NUM_THREADS (conformance run: CPUs / workers)
            "onednn_dtypes": torch_onednn_dtypes(),
        }

    def facts(self) -> list[str]:
        return [f"torch.mkldnn_{d}" for d in torch_onednn_dtypes()] if "torch" in sys.modules else []

    def applies(self, case: Case, api: str) -> bool:
        # gradients of invalid / bias-free cases mean nothing; which cases a path column runs
        # on is the run profile's choice (convt_conformance/loading/profiles.yaml, `within`)
        return gradient_applies(case, api)

    def api_label(self, api: str, rank: int) -> str:
        if "@" in api:
            return torch_paths.path_label(api, rank)
        base = forward_api(api)
        return gradient_label(f"conv_transpose{rank}d" if base == "conv_transpose" else f"ConvTranspose{rank}d",
                              api)

    @staticmethod
    def native_name(api: str, rank: int) -> str:
        return (f"torch.nn.functional.conv_transpose{rank}d" if api == "conv_transpose"
                else f"torch.nn.ConvTranspose{rank}d")

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        if api == "ConvTranspose" and case.expected_error:
            why = self._module_cannot_take(case)
            if why:
                return why
        if case.rank not in (1, 2, 3):
            return None if case.expected_error else f"spatial rank {case.rank} has no native API"
        sym = case.geometry.symmetric_padding if len(case.padding) == case.rank else None
        if sym is None:
            why = ("unequal (begin, end) padding pairs: torch's `padding` is one int per axis, "
                   "cut from both ends")
            if case.padding_mode:  # string padding: torch has no string for transposed convs
                why = (f"padding {case.padding_mode!r} resolves to {[list(p) for p in case.padding]}; {why}; "
                       "torch's padding='same'/'valid' strings exist for Conv{1,2,3}d only, not ConvTranspose")
            return why
        if "@" in api:
            return torch_paths.path_supports(case, api, device, dtype)
        return None

    @staticmethod
    def _module_cannot_take(case: Case) -> str | None:
        """nn.ConvTranspose{n}d builds its own weight (in_channels, out_channels/groups, *K) and bias
        (out_channels,): a weight of another C_in or a bias of another length cannot be given to it
        (the adapter's copy_ would fail, which is no rejection by the module)."""
        if len(case.weight.shape) > 1 and case.weight.shape[0] != case.in_channels:
            return (f"nn.ConvTranspose{case.rank}d creates its weight with C_in = in_channels "
                    f"({case.in_channels}): a weight with C_in {case.weight.shape[0]} cannot be given to it")
        if case.bias is not None and case.bias.shape != (case.out_channels,):
            return (f"nn.ConvTranspose{case.rank}d creates its bias of shape (out_channels,) = "
                    f"({case.out_channels},): a bias of shape {list(case.bias.shape)} cannot be given to it")
        return None

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if "@" in api:  # execution paths (channels_last, compile, autocast, deterministic)
            return torch_paths.run_path(case, api, device, dtype, x, w, b)
        if gradient_quantity(api):
            return self._run_gradient(case, api, device, dtype, x, w, b, cotangent)
        import torch

        kwargs = call_kwargs(case, device, dtype)
        rank = x.ndim - 2
        name = "conv_transpose" if api == "conv_transpose" else "conv_transpose_module"
        call = NativeCall(
            function=self.native_name(api, rank), input_layout=_LAYOUT.get(rank, "?"),
            weight_layout="(C_in, C_out/groups, *K)", output_layout=_LAYOUT.get(rank, "?"),
            weight_transform="identity (no permutation, no flip)", weight_permutation=None,
            weight_flip=False,
            padding_mapping="padding=p (symmetric, cut from both ends); output_padding passed as is",
            arguments={**{k: kwargs[k] for k in HYPER}, "bias": b is not None, "device": kwargs["device"],
                       "placed_on": None, "dtype": dtype, "call": name, "call_kwargs": dict(kwargs)},
            precision={"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32},
        )
        try:
            res, facts = getattr(torch_calls, name)(x, w, b, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = str(facts["device"])
        return RunOutput(res, str(facts["dtype"]), call, placed_on=placed(str(facts["device"])))

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded ``conv_transpose{n}d`` / ``nn.ConvTranspose{n}d`` call, plain or on its
        execution path (canonical layout in and out): convt_conformance/adapters/torch/repro.py."""
        from convt_conformance.adapters.torch.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """``torch.autograd.grad`` of the recorded call: convt_conformance/adapters/torch/repro.py."""
        from convt_conformance.adapters.torch.repro import gradient_source

        return gradient_source(native_call, quantity)

    def _run_gradient(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
                      b: np.ndarray | None, g: np.ndarray | None) -> RunOutput:
        """torch autograd of the same native call: ``torch.autograd.grad(out, [target], g)`` with
        ``requires_grad`` on x, w (and b); for the module API the target is ``mod.weight`` /
        ``mod.bias`` (calls.py's ``conv_transpose_grad`` / ``conv_transpose_module_grad``). The
        canonical layout is torch's own: no conversion."""
        import torch

        quantity = gradient_quantity(api)
        if quantity is None:
            raise ValueError(f"{api!r} is not a gradient api")
        base = forward_api(api)
        if g is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        rank = x.ndim - 2
        wrt = {"grad_input": "input", "grad_weight": "weight", "grad_bias": "bias"}[quantity]
        kwargs = {"wrt": wrt, **call_kwargs(case, device, dtype)}
        name = "conv_transpose_grad" if base == "conv_transpose" else "conv_transpose_module_grad"
        what = wrt if base == "conv_transpose" or quantity == "grad_input" else f"mod.{wrt}"
        call = NativeCall(
            function=f"torch.autograd.grad({self.native_name(base, rank)}(...), [{what}], grad_outputs=g)",
            input_layout=_LAYOUT.get(rank, "?"), weight_layout="(C_in, C_out/groups, *K)",
            output_layout=_LAYOUT.get(rank, "?"),
            weight_transform="identity (no permutation, no flip); gradient returned in torch's (canonical) layout",
            padding_mapping="padding=p (symmetric, cut from both ends); output_padding passed as is",
            arguments={**{k: kwargs[k] for k in HYPER}, "bias": b is not None, "device": kwargs["device"],
                       "placed_on": None, "dtype": dtype, "differentiated": what, "method": "autograd",
                       "requires_grad": ["input", "weight"] + (["bias"] if b is not None else []),
                       "cotangent_layout": _LAYOUT.get(rank, "?"), "call": name, "call_kwargs": dict(kwargs)},
            precision={"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32},
        )
        try:  # the call that failed is recorded (convt_conformance/checking/check.py)
            res, facts = getattr(torch_calls, name)(x, w, b, g, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = str(facts["device"])
        return RunOutput(res, str(facts["dtype"]), call, placed_on=placed(str(facts["device"])))
