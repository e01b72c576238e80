"""PyTorch adapter: ``torch.nn.functional.conv_transpose{1,2,3}d`` and ``nn.ConvTranspose{1,2,3}d``.

PyTorch's native convention IS the canonical one: NC(D)(H)W input, weight
``(C_in, C_out/groups, *K)`` without flip, symmetric ``padding`` cut from both ends and
``output_padding`` added at the far end. The translation is the identity; unequal
``(begin, end)`` padding pairs cannot be expressed natively and are unsupported.
"""

from __future__ import annotations

import numpy as np

from adapters.base import Adapter, NativeCall, ProbeCall, RunOutput

_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


class TorchAdapter(Adapter):
    name = "torch"
    module = "torch"
    distributions = ("torch",)
    apis = ("conv_transpose", "ConvTranspose")  # functional / module; rank suffix added in ids
    order = 10

    def probes(self):
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            import torch

            if layout != "channels-first":
                raise ValueError("torch's conv_transpose2d takes NCHW only")
            return torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w),
                                                        stride=stride).numpy()
        return [ProbeCall("conv_transpose2d", ("identity", "channels-first"), call)]

    def _import(self):
        import torch  # noqa: F401

    def devices(self):
        import torch

        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def configure(self, precision):
        import torch

        if precision == "strict":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.set_float32_matmul_precision("highest")
        return {
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }

    def api_label(self, api, rank):
        return f"conv_transpose{rank}d" if api == "conv_transpose" else f"ConvTranspose{rank}d"

    @staticmethod
    def native_name(api: str, rank: int) -> str:
        return (f"torch.nn.functional.conv_transpose{rank}d" if api == "conv_transpose"
                else f"torch.nn.ConvTranspose{rank}d")

    def supports(self, case, api, device, dtype):
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
        return None

    def run(self, case, api, device, dtype, x, w, b):
        import torch

        dev = "cuda" if device == "gpu" else "cpu"
        tdt = getattr(torch, dtype)
        tx = torch.from_numpy(x).to(device=dev, dtype=tdt)
        tw = torch.from_numpy(w).to(device=dev, dtype=tdt)
        tb = torch.from_numpy(b).to(device=dev, dtype=tdt) if b is not None else None
        rank = x.ndim - 2
        sym = case.geometry.symmetric_padding
        # Invalid cases with unequal pairs: pass the begin values (torch has nothing else).
        padding = list(sym) if sym is not None else [p[0] for p in case.padding]
        kwargs = dict(stride=list(case.stride), padding=padding,
                      output_padding=list(case.output_padding), groups=case.groups,
                      dilation=list(case.dilation))
        fn = self.native_name(api, rank)
        with torch.no_grad():
            if api == "conv_transpose":
                f = getattr(torch.nn.functional, f"conv_transpose{rank}d")
                out = f(tx, tw, tb, **kwargs)
            else:
                mod_cls = getattr(torch.nn, f"ConvTranspose{rank}d")
                mod = mod_cls(x.shape[1], w.shape[1] * case.groups, kernel_size=list(w.shape[2:]),
                              bias=b is not None, device=dev, dtype=tdt, **kwargs)
                mod.weight.copy_(tw)
                if tb is not None:
                    mod.bias.copy_(tb)
                out = mod(tx)
            res = out.detach().to("cpu", torch.float64).numpy()
        call = NativeCall(
            function=fn, input_layout=_LAYOUT.get(rank, "?"),
            weight_layout="(C_in, C_out/groups, *K)", output_layout=_LAYOUT.get(rank, "?"),
            weight_transform="identity (no permutation, no flip)", weight_permutation=None,
            weight_flip=False,
            padding_mapping="padding=p (symmetric, cut from both ends); output_padding passed as is",
            arguments={**kwargs, "bias": b is not None, "device": dev, "placed_on": str(out.device),
                       "dtype": dtype},
            precision={"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32},
        )
        return RunOutput(res, str(out.dtype).replace("torch.", ""), call,
                         placed_on="gpu" if out.device.type == "cuda" else out.device.type)
