"""tinygrad adapter: ``tinygrad.Tensor.conv_transpose2d``, which despite its name takes any number of
spatial axes ("unlike PyTorch, this implementation is not limited to only 2d transposed
convolutions"): the same call serves 1-D, 2-D and 3-D cases.

Native convention (tinygrad's docstring and implementation, tinygrad/mixin/op.py): input ``(N, C_in,
*S)``, weight ``(C_in, C_out/groups, *K)`` given unflipped (tinygrad flips it and runs the
equivalent dilated convolution), ``output_padding`` added at the far end, the bias an ``add`` of
``(1, C_out, 1, ...)``. ``padding`` takes three forms, each its own column: one int per axis cut
from both ends (``conv_transpose2d``, PyTorch's meaning), one int for every side of every axis
(``conv_transpose2d:int``), or ``2 * rank`` ints ``(begin_last, end_last, ..., begin_first,
end_first)``, the last axis first (``conv_transpose2d:pairs``, the only form for unequal pairs).
So the translation is the identity, plus the reversed flat order of the pairs form.

Device: tinygrad's CPU device compiles its kernels with ``clang``; where it cannot be opened (no
clang: "FileNotFoundError: [Errno 2] No such file or directory: 'clang'") the checks run on the
PYTHON device, which interprets the same kernels in Python. One column set, whichever device runs
it: the device and, where the CPU device failed, its error are recorded in ``configure``'s flags
(the results' environment), in each native call (``arguments["device"]``), and as the fact
``tinygrad.cpu_device`` / ``tinygrad.python_device``. Every tensor is created on that device
explicitly: tinygrad's default device (``Device.DEFAULT``, whose first read writes ``DEV`` into the
process environment) is never touched, so nothing leaks into other frameworks in the same worker.

Gradient apis (``conv_transpose2d:grad_input`` / ``:grad_weight`` / ``:grad_bias``): tinygrad 0.14
has no ``requires_grad`` flag; ``y.gradient(target, gradient=g)`` (``Tensor.gradient``, its
reverse-mode autodiff) differentiates the same call with the cotangent ``g``.

The native calls are convt_conformance/adapters/tinygrad/calls.py's functions; the adapter records
which (``arguments["call"]``) with what (``arguments["call_kwargs"]``): the reproducer (repro.py)
embeds the same function.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.tinygrad import calls as tg_calls
from convt_conformance.model.apis import forward_api, gradient_applies, gradient_quantity, with_gradients

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

API = "conv_transpose2d"
#: the padding forms: the column suffix -> what is passed as ``padding``
FORMS = {"": "one int per axis", ":int": "one int for every side of every axis",
         ":pairs": "2*rank ints (begin, end) per axis, the last axis first"}
_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


def flat_pairs(pairs: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> list[int]:
    """The canonical ``(begin, end)`` pairs (first spatial axis first) in tinygrad's flat padding
    form: ``[begin_last, end_last, ..., begin_first, end_first]`` (the last axis first, like
    ``torch.nn.functional.pad``; tinygrad's ``flat_to_grouped`` reads it back)."""
    return [int(v) for pair in reversed(list(pairs)) for v in pair]


def padding_argument(case: Case, api: str) -> tuple[int | list[int] | None, str | None]:
    """(``padding`` as tinygrad's form of ``api`` takes it, None) or (None, why that form cannot
    hold the case's pairs)."""
    form = api[len(API):]
    pairs = [(int(b), int(e)) for b, e in case.padding]
    if form == ":pairs":
        return flat_pairs(pairs), None
    if any(b != e for b, e in pairs):
        why = (f"unequal (begin, end) padding pairs: tinygrad's padding as {FORMS[form]} cuts the same "
               f"amount from both ends of an axis; the 2*rank form is the {API}:pairs column")
        if case.padding_mode:
            why = f"padding {case.padding_mode!r} resolves to {[list(p) for p in pairs]}; {why}"
        return None, why
    if form == ":int":
        values = {b for b, _ in pairs}
        if len(values) != 1:
            return None, (f"padding {[b for b, _ in pairs]} differs between axes: tinygrad's padding as one int "
                          "pads every side of every axis alike (the per-axis form is the conv_transpose2d column)")
        return values.pop(), None
    return [b for b, _ in pairs], None


class TinygradAdapter(Adapter):
    name = "tinygrad"
    module = "tinygrad"
    distributions = ("tinygrad",)
    apis = (API, f"{API}:int", f"{API}:pairs", *with_gradients((API,))[1:])
    order = 80
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    gpu_capable = False  # the CPU (or PYTHON) device only: tinygrad's GPU backends are not run by this adapter

    def _import(self) -> None:
        import tinygrad  # noqa: F401

        tg_calls.device_choice()

    def devices(self) -> list[str]:
        return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        """The tinygrad device that runs the checks (``CPU``, or ``PYTHON`` where the CPU device
        cannot compile) and the switches of tinygrad's that change the convolution it runs (the
        same for ``strict`` and ``default``: tinygrad has no precision modes)."""
        from tinygrad.helpers import IMAGE, WINO

        device, why = tg_calls.device_choice()
        return {"tinygrad_device": device, "cpu_device_error": why,
                "emulated_dtypes": tg_calls.emulated_dtypes(device), "WINO": int(WINO.value),
                "IMAGE": int(IMAGE.value)}

    def facts(self) -> list[str]:
        """``tinygrad.cpu_device`` or ``tinygrad.python_device`` (which device ran the kernels), and
        ``tinygrad.<dtype>_emulated`` for each dtype that device's renderer does not support."""
        if "tinygrad" not in sys.modules:
            return []
        device = tg_calls.device_choice()[0]
        emulated = [f"tinygrad.{d}_emulated" for d in tg_calls.emulated_dtypes(device)]
        return [f"tinygrad.{device.lower()}_device", *emulated]

    def probes(self) -> list[ProbeCall]:
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            if layout != "channels-first":
                raise ValueError("Tensor.conv_transpose2d takes (N, C_in, *S) input only")
            return tg_calls.conv_transpose(
                x.astype(np.float64), w.astype(np.float64), None, stride=list(stride), padding=[0, 0],
                dilation=[1, 1], output_padding=[0, 0], groups=1, device=tg_calls.device_choice()[0],
                dtype="float64")[0]
        return [ProbeCall(API, ("identity", "channels-first"), call)]

    def applies(self, case: Case, api: str) -> bool:
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        _, why = padding_argument(case, forward_api(api))
        return why

    def _kwargs(self, case: Case, api: str, dtype: str) -> dict[str, Any]:
        """The keyword arguments of calls.py's calls: plain literals, a pure function of the case,
        the column and the dtype. Invalid cases get their hyper-parameters as given: tinygrad is
        the one to reject them."""
        padding, why = padding_argument(case, forward_api(api))
        if why is not None:
            raise ValueError(why)
        return {"stride": [int(s) for s in case.stride], "padding": padding,
                "dilation": [int(d) for d in case.dilation], "output_padding": [int(p) for p in case.output_padding],
                "groups": int(case.groups), "device": tg_calls.device_choice()[0], "dtype": dtype}

    def _native_call(self, case: Case, api: str, kwargs: dict[str, Any], has_bias: bool) -> NativeCall:
        rank = len(case.input.shape) - 2
        form = forward_api(api)[len(API):]
        quantity = gradient_quantity(api)
        function = "tinygrad.Tensor.conv_transpose2d"
        if quantity:
            function = f"y.gradient({quantity.removeprefix('grad_')}, gradient=g) of y = {function}(...)"
        return NativeCall(
            function=function, input_layout=_LAYOUT.get(rank, "?"), weight_layout="(C_in, C_out/groups, *K)",
            output_layout=_LAYOUT.get(rank, "?"), weight_transform="identity (no permutation, no flip)",
            weight_permutation=None, weight_flip=False,
            padding_mapping=(f"padding as {FORMS[form]}" + ("" if form != ":pairs" else
                             " (the canonical pairs in reversed axis order)") + "; output_padding as is"),
            arguments={**{k: kwargs[k] for k in ("stride", "padding", "dilation", "output_padding", "groups")},
                       "bias": has_bias, "device": kwargs["device"], "placed_on": None, "dtype": kwargs["dtype"],
                       **({"differentiated": quantity.removeprefix("grad_"), "method": "Tensor.gradient"}
                          if quantity else {}),
                       "call": "conv_transpose_grad" if quantity else "conv_transpose", "call_kwargs": dict(kwargs)},
            precision={"tinygrad_device": kwargs["device"]})

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        """One call of calls.py on tinygrad's CPU or PYTHON device (canonical layouts in and out;
        the pairs form gets the pairs in reversed axis order)."""
        if device != "cpu":
            raise ValueError(f"{self.name} runs on tinygrad's CPU or PYTHON device only, not on {device!r}")
        quantity = gradient_quantity(api)
        kwargs = self._kwargs(case, api, dtype)
        if quantity:
            kwargs = {"wrt": quantity.removeprefix("grad_"), **kwargs}
        call = self._native_call(case, api, kwargs, b is not None)
        if quantity and cotangent is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        try:
            if quantity and cotangent is not None:
                y, facts = tg_calls.conv_transpose_grad(x, w, b, cotangent, **kwargs)
            else:
                y, facts = tg_calls.conv_transpose(x, w, b, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        placed = str(facts["device"])
        call.arguments["placed_on"] = placed
        return RunOutput(y, str(facts["dtype"]), call,
                         placed_on="cpu" if placed.split(":")[0] in ("CPU", "PYTHON") else placed)

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The forward call, described without making it (a pure function of the case)."""
        if gradient_quantity(api) or padding_argument(case, api)[1] is not None:
            return None
        return self._native_call(case, api, self._kwargs(case, api, dtype), case.bias is not None)

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded call on the recorded tinygrad device: repro.py."""
        from convt_conformance.adapters.tinygrad.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """``Tensor.gradient`` of the recorded call with the cotangent ``G``: repro.py."""
        from convt_conformance.adapters.tinygrad.repro import gradient_source

        return gradient_source(native_call, quantity)
