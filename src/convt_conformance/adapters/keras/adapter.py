"""Keras 3 adapter: ``keras.ops.conv_transpose`` and ``keras.layers.Conv{1,2,3}DTranspose`` on
every installed Keras backend (jax, torch, tensorflow, numpy), each backend its own columns.

Keras fixes its backend per process at import, so this adapter never imports keras: per backend
it starts one long-lived child (``python -m convt_conformance.adapters.keras.worker`` with ``KERAS_BACKEND`` set;
protocol in convt_conformance/adapters/keras/worker.py), lazily on first use, reused by every check of that backend
in this pytest worker. A child that dies or exceeds the per-call limit (``CONFORMANCE_KERAS_TIMEOUT``,
default 120 s) makes that one check an error with its stderr tail; the next starts a fresh child.

Native convention: channels_last (or channels_first for the ``:channels_first`` layer column)
input, kernel ``(*K, C_out, C_in)`` (a permutation of the canonical ``(C_in, C_out, *K)``, no
flip), padding only ``'valid'``/``'same'`` plus ``output_padding`` (int per axis or None). The
canonical pads are mapped to the Keras arguments whose own meaning (Keras'
``_convert_conv_transpose_padding_args_from_keras_to_jax`` in
keras/src/backend/common/backend_utils.py, the definition every backend is meant to follow) equals
them; a case with ``padding_mode`` passes its word when Keras' meaning of it is the format's.
What Keras cannot express (groups, other pads) is unsupported with the reason. An invalid case's
negative output_padding is passed as is (with ``'valid'``), never as an equivalent valid crop.

Gradient apis (``<backend>:<kind>:grad_input`` / ``:grad_weight`` / ``:grad_bias``): Keras 3 has
no backend-agnostic gradient API, so the child differentiates the same Keras call with its
backend's own autodiff (``torch.autograd.grad``, ``tf.GradientTape``, ``jax.vjp``; layers w.r.t.
their variables; convt_conformance/adapters/keras/worker.py ``grad``); the numpy backend's are unsupported (no
autodiff, none emulated). One backward pass per (case, dtype, column) serves its three checks (a
small cache keyed by the exact inputs); when it fails, each check asks for its gradient alone.

The native calls are convt_conformance/adapters/keras/calls.py's (the child makes them; the
reproducers embed their source): this module sends the child their keyword arguments.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, FrameworkError, NativeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.keras.calls import BACKENDS
from convt_conformance.adapters.keras.child import KerasChild as _Worker
from convt_conformance.adapters.keras.worker import WRT, gradient_method
from convt_conformance.model.apis import (
    forward_api,
    gradient_applies,
    gradient_label,
    gradient_quantity,
    with_gradients,
)

if TYPE_CHECKING:
    from convt_conformance.loading.cases import Case

# backend -> modules it needs (Keras' numpy backend runs conv_transpose through jax.lax)
_NEEDS = {"jax": ("jax",), "torch": ("torch",), "tensorflow": ("tensorflow",), "numpy": ("jax",)}
_KINDS = ("ops", "layer", "layer_cf")
# the reason every gradient check of Keras' numpy backend is unsupported (checked in its sources:
# keras/src/backend/numpy/core.py, trainer.py)
NUMPY_NO_AUTODIFF = (
    "Keras' numpy backend has no automatic differentiation (inference only: its trainer raises "
    "\"fit not implemented for NumPy backend.\", and custom_gradient there is a pass-through: \"No "
    "gradient computation or modification takes place\"), so there is no native Keras gradient to check; "
    "the adapter does not emulate one")
_GRAD_CACHE = 8  # (column, case, dtype) backward passes kept: the three checks of one arrive together


def installed_backends() -> tuple[str, ...]:
    """Keras backends whose framework modules can be found (without importing them)."""
    return tuple(b for b in BACKENDS if all(importlib.util.find_spec(m) is not None for m in _NEEDS[b]))


def keras_axis(mode: str, op: int | None, k: int, s: int, d: int) -> tuple[int, int]:
    """Keras' meaning of ``(padding, output_padding)`` on one axis as the canonical effective crop
    ``(begin, end - output_padding)`` (a negative end = elements appended). Transcribes
    ``_convert_conv_transpose_padding_args_from_keras_to_jax``: pads ``(left, right)`` of the
    stride-dilated input, i.e. begin = k_eff-1-left, end_eff = k_eff-1-right."""
    ke = d * (k - 1) + 1
    if mode == "valid":
        op = max(ke, s) - ke if op is None else op
        left, right = ke - 1, ke - 1 + op
    else:
        pad_len = s + ke - 2 if op is None else ke + ke % 2 - 2 + op
        left = min(pad_len // 2 + pad_len % 2, ke - 1)
        right = pad_len - left
    return ke - 1 - left, ke - 1 - right


def keras_arguments(case: Case) -> tuple[tuple[str, list[int | None] | None] | None, str]:
    """``((padding, output_padding), how)`` for the case, or ``(None, why not)``."""
    want = [(pb, pe - op) for (pb, pe), op in zip(case.padding, case.output_padding)]
    axes = list(zip(case.geometry.kernel, case.stride, case.dilation))

    def means(mode: str, ops: list[int | None]) -> bool:
        return all(keras_axis(mode, op, k, s, d) == wv for op, (k, s, d), wv in zip(ops, axes, want))

    if case.expected_error and any(op < 0 for op in case.output_padding):
        # A negative output_padding has an equivalent crop among Keras' valid arguments ('same',
        # or 'valid' with a smaller output_padding), which would hide the invalid value: it is
        # passed as is, with 'valid' where that is the case's own meaning (zero pads), so that
        # Keras itself must refuse it.
        given: list[int | None] = [int(op) for op in case.output_padding]
        if means("valid", given):
            return ("valid", given), "invalid case: its negative output_padding passed as is with 'valid'"
        return None, (f"Keras takes only padding 'valid'/'same' (+ output_padding); pads "
                      f"{[list(p) for p in case.padding]} with output_padding {given} are neither "
                      "(a negative output_padding is passed only as is, with 'valid')")
    word = {"same_upper": "same"}.get(case.padding_mode or "", case.padding_mode)
    if word in ("valid", "same"):
        mop = list(case.mode_output_padding or [0] * case.rank)
        ops: list[int | None] = [None] * case.rank if word == "same" and not any(mop) else list(mop)
        if means(word, ops):
            return (word, None if ops[0] is None else ops), f"the case's `{case.padding_mode}` passed as Keras' {word!r}"
    for mode in ("valid", "same"):
        if means(mode, [None] * case.rank):
            return (mode, None), f"canonical pads = Keras' {mode!r} with output_padding=None"
        per_axis = [[op for op in range(s) if keras_axis(mode, op, k, s, d) == wv] for (k, s, d), wv in zip(axes, want)]
        if all(per_axis):
            return (mode, [c[0] for c in per_axis]), f"canonical pads = Keras' {mode!r} with explicit output_padding"
    pads = [list(p) for p in case.padding]
    extra = ""
    if word == "same" and any(case.mode_output_padding or ()):
        extra = ("; Keras' 'same' with output_padding op means out = (n-1)*s + k_eff % 2 + op "
                 "(backend_utils.py), not the format's n*s")
    return None, (f"Keras takes only padding 'valid'/'same' (+ output_padding); pads {pads} with output_padding "
                  f"{list(case.output_padding)} are neither{extra}")


class KerasAdapter(Adapter):
    name = "keras"
    module = "keras"
    distributions = ("keras",)
    dtypes = ("float32", "float64")
    order = 40
    gpu_capable = False  # children run with CUDA_VISIBLE_DEVICES="" (CPU columns only)

    def __init__(self) -> None:
        self.backends = installed_backends()
        # forward columns, then their gradients (":grad_input", ...), per backend
        self.apis = with_gradients(tuple(f"{b}:{k}" for b in self.backends for k in _KINDS))
        self._grads: collections.OrderedDict[tuple, dict | FrameworkError] = collections.OrderedDict()
        self._precision = "strict"
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self.timeout = float(os.environ.get("CONFORMANCE_KERAS_TIMEOUT", "120"))

    def _import(self) -> None:
        import importlib.util as iu

        if iu.find_spec("keras") is None:
            raise ImportError("No module named 'keras'")
        if not self.backends:
            raise ImportError("none of Keras' backends (jax, torch, tensorflow) is installed")

    def configure(self, precision: str) -> dict[str, Any]:
        self._precision = precision
        return {"backends": list(self.backends), "precision": precision, "process_model": "one long-lived child per backend, CPU only"}

    def facts(self) -> list[str]:  # what the backend children started so far report (the TF backend's oneDNN)
        return [f for w in list(self._workers.values()) for f in w.hello.get("facts", [])]

    def api_label(self, api: str, rank: int) -> str:
        backend, _, kind = forward_api(api).partition(":")
        return gradient_label({"ops": f"[{backend}]ops.conv_transpose", "layer": f"[{backend}]Conv{rank}DTranspose",
                               "layer_cf": f"[{backend}]Conv{rank}DTranspose:channels_first"}[kind], api)

    @classmethod
    def affinity_group(cls, api_label: str) -> str:
        """One group per backend (``keras.[torch]``): each backend is a child process of its own,
        started in every worker that runs one of its checks."""
        if api_label.startswith("["):
            return f"{cls.name}.{api_label.split(']', 1)[0]}]"
        return cls.name

    def applies(self, case: Case, api: str) -> bool:
        # gradients of invalid / bias-free cases mean nothing
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        if gradient_quantity(api) and api.partition(":")[0] == "numpy":
            return NUMPY_NO_AUTODIFF
        if case.rank not in (1, 2, 3):
            return None if case.expected_error else f"spatial rank {case.rank} has no native API"
        if case.groups != 1:
            return "keras Conv{n}DTranspose / ops.conv_transpose have no groups argument"
        if case.expected_error:  # only what Keras cannot even be asked (like the TF adapter)
            if len(case.padding) != case.rank or len(case.output_padding) != case.rank:
                return "the case's per-axis lengths differ from its rank: no Keras call describes it"
            args, why = keras_arguments(case)
            return None if args else why
        args, why = keras_arguments(case)
        return None if args else why

    # --- the child processes ---
    def worker(self, backend: str) -> _Worker:
        """The backend's running child, started (and its hello read) when absent or dead."""
        w = self._workers.get(backend)
        if w is not None and w.proc.poll() is None:
            return w
        if w is not None:
            w.close()
        w = _Worker(backend, self._precision)
        self._workers[backend] = w
        try:
            hello = w.receive(self.timeout)
        except (EOFError, TimeoutError) as exc:
            self._drop(backend)
            raise RuntimeError(f"keras[{backend}] worker did not start ({type(exc).__name__}); "
                               f"stderr tail: {w.stderr_tail()}") from None
        if not hello.get("ok"):
            self._drop(backend)
            raise RuntimeError(f"keras[{backend}] worker failed to start: {hello.get('error')}")
        w.hello = hello["hello"]
        return w

    def _drop(self, backend: str) -> None:
        w = self._workers.pop(backend, None)
        if w is not None:
            w.close()

    def call(self, backend: str, msg: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request to the backend's child and return its reply; a dead or hung child
        raises RuntimeError with its exit status and stderr tail and is replaced next time."""
        with self._lock:
            w = self.worker(backend)
            try:
                w.send(msg)
                reply = w.receive(self.timeout if timeout is None else timeout)
            except (EOFError, BrokenPipeError, TimeoutError) as exc:
                hung = isinstance(exc, TimeoutError)
                if hung:
                    w.proc.kill()
                code = w.proc.wait()
                tail = w.stderr_tail()
                self._drop(backend)
                what = (f"timed out after {self.timeout if timeout is None else timeout:g} s (killed)" if hung
                        else f"died with exit status {code}")
                raise RuntimeError(f"keras[{backend}] worker {what} during {msg.get('op')}; "
                                   f"stderr tail: {tail[-800:]}") from None
        if not reply.get("ok"):
            raise FrameworkError(reply.get("error", "unknown worker error"))
        return reply

    def close(self) -> None:
        for b in list(self._workers):
            self._drop(b)

    def __del__(self) -> None:  # best effort (also at interpreter exit): children exit when their stdin closes
        try:
            self.close()
        except Exception:
            pass

    @staticmethod
    def _call_kwargs(backend: str, kind: str, dtype: str, case: Case, padding: str,
                     output_padding: list[int | None] | list[int] | None) -> dict[str, Any]:
        """The keyword arguments of calls.py ``conv_transpose`` for a column ``<backend>:<kind>``
        (``ops``: keras.ops.conv_transpose channels_last; ``layer`` / ``layer_cf``: the layer
        channels_last / channels_first): what the child is sent and the record's ``call_kwargs``."""
        return {"backend": backend, "layer": kind != "ops", "dtype": dtype,
                "data_format": "channels_first" if kind == "layer_cf" else "channels_last",
                "strides": [int(s) for s in case.stride], "padding": padding,
                "output_padding": None if output_padding is None else
                [None if v is None else int(v) for v in output_padding],
                "dilation_rate": [int(d) for d in case.dilation]}

    def _native_call(self, backend: str, kind: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                     kwargs: dict[str, Any], mapping: str, function: str, **extra: Any) -> NativeCall:
        """The NativeCall of one Keras call (built here, so a failed call has one too): layouts, kernel
        permutation ``(C_in, C_out, *K) -> (*K, C_out, C_in)`` (no flip), the Keras arguments of
        ``kwargs`` (calls.py ``conv_transpose``'s, recorded as ``call_kwargs``) + ``extra``."""
        rank = x.ndim - 2
        lay = ("NC" + "DHW"[3 - rank:] if kind == "layer_cf" else "N" + "DHW"[3 - rank:] + "C") \
            if 1 <= rank <= 3 else "?"
        perm = [*range(2, w.ndim), 1, 0]
        hello = self._workers[backend].hello if backend in self._workers else {}
        return NativeCall(
            function=function, input_layout=lay, weight_layout="(*K, C_out, C_in)", output_layout=lay,
            weight_transform=f"permute {tuple(perm)}; no flip", weight_permutation=perm, weight_flip=False,
            padding_mapping=mapping,
            arguments={**{k: kwargs[k] for k in ("strides", "padding", "output_padding", "dilation_rate")},
                       "data_format": kwargs["data_format"],
                       "bias": (None if b is None else "layer use_bias + set_weights" if kind != "ops"
                                else "keras.ops.add"), "keras": hello.get("keras"), **extra,
                       "call": "conv_transpose", "call_kwargs": kwargs},
            precision={k: v for k, v in hello.items() if k not in ("keras", "backend")},
        )

    @staticmethod
    def _function(kind: str, rank: int) -> str:
        return "keras.ops.conv_transpose" if kind == "ops" else f"keras.layers.Conv{rank}DTranspose"

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if gradient_quantity(api):
            return self._run_gradient(case, api, dtype, x, w, b, cotangent)
        backend, _, kind = api.partition(":")
        args, how = keras_arguments(case) if x.ndim == w.ndim else (None, "")
        if args is None:  # an invalid case of mismatched ranks: Keras is asked 'valid' and must refuse
            args, how = ("valid", list(case.output_padding)), "invalid case: padding='valid'"
        padding, output_padding = args
        kwargs = self._call_kwargs(backend, kind, dtype, case, padding, output_padding)
        mapping = f"{how}: padding={padding!r}, output_padding={output_padding!r}"
        fn = f"{self._function(kind, x.ndim - 2)} (KERAS_BACKEND={backend})"
        try:
            reply = self.call(backend, {"op": "run", "x": x, "w": w, "b": b, "kwargs": kwargs})
        except FrameworkError as exc:  # the call that failed (convt_conformance/checking/check.py records it)
            attach_failed_call(exc, self._native_call(backend, kind, x, w, b, kwargs, mapping, fn))
            raise
        call = self._native_call(backend, kind, x, w, b, kwargs, mapping, fn)  # after the child's hello
        return RunOutput(reply["array"], reply["native_dtype"], call, placed_on="cpu")

    @staticmethod
    def _grad_kwargs(kwargs: dict[str, Any], wrt: list[str]) -> dict[str, Any]:
        """calls.py ``conv_transpose``'s keyword arguments for the gradients ``wrt`` (quantities)."""
        return {**kwargs, "wrt": [WRT[q] for q in wrt]}

    def _gradients(self, backend: str, msg: dict[str, Any], wrt: list[str]) -> dict[str, Any]:
        """The child's reply to one ``grad`` request for all of ``wrt``, cached by the exact request
        (inputs, cotangent, arguments): the three gradient checks of a (case, dtype, column) share
        one backward pass. A refused or failed request is cached too and re-raised."""
        h = hashlib.sha256(repr(sorted(msg["kwargs"].items())).encode())
        for field in ("x", "w", "b", "g"):
            a = msg[field]
            h.update(b"None" if a is None else repr((a.shape, str(a.dtype))).encode() + a.tobytes())
        key = (backend, tuple(wrt), h.hexdigest())
        hit = self._grads.get(key)
        if hit is None:
            try:
                hit = self.call(backend, {**msg, "op": "grad", "wrt": wrt,
                                          "kwargs": self._grad_kwargs(msg["kwargs"], wrt)})
            except FrameworkError as exc:
                hit = exc
            self._grads[key] = hit
            if len(self._grads) > _GRAD_CACHE:
                self._grads.popitem(last=False)
        else:
            self._grads.move_to_end(key)
        if isinstance(hit, FrameworkError):
            raise FrameworkError(str(hit))
        return hit

    def _run_gradient(self, case: Case, api: str, dtype: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                      g: np.ndarray | None) -> RunOutput:
        """The backend's own autodiff of the same Keras call (convt_conformance/adapters/keras/worker.py ``grad``),
        the cotangent ``g`` moved into the output's layout; the gradient comes back in canonical
        layout (input channels first, kernel through the inverse permutation, no flip). A failed
        request raises FrameworkError carrying the call (``native_call``, one_backward_pass_for the
        quantity alone: the retry's)."""
        if g is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        quantity = gradient_quantity(api)
        if quantity is None:
            raise ValueError(f"{api!r} is not a gradient api")
        base = forward_api(api)
        backend, _, kind = base.partition(":")
        arguments, how = keras_arguments(case)
        if arguments is None:  # supports() refused the case already
            raise ValueError(f"case {case.id}: {how}")
        padding, output_padding = arguments
        kwargs = self._call_kwargs(backend, kind, dtype, case, padding, output_padding)
        msg = {"x": x, "w": w, "b": b, "g": g, "kwargs": kwargs}
        wrt = ["grad_input", "grad_weight"] + (["grad_bias"] if b is not None else [])
        try:
            reply = self._gradients(backend, msg, wrt)
            got = reply["gradients"][quantity]
        except FrameworkError:
            # the shared pass failed: ask for this gradient alone, so that a failure of one
            # (e.g. only the kernel's) is not charged to the others, and this one's message is its own
            wrt = [quantity]
            try:
                reply = self._gradients(backend, msg, wrt)
            except FrameworkError as exc:  # the call that failed (convt_conformance/checking/check.py records it)
                attach_failed_call(exc, self._gradient_call(backend, kind, quantity, wrt, x, w, b, kwargs, how, None))
                raise
            got = reply["gradients"][quantity]
        call = self._gradient_call(backend, kind, quantity, wrt, x, w, b, kwargs, how, got["native_shape"])
        return RunOutput(got["array"], got["native_dtype"], call, placed_on="cpu")

    def _gradient_call(self, backend: str, kind: str, quantity: str, wrt: list[str], x: np.ndarray, w: np.ndarray,
                       b: np.ndarray | None, kwargs: dict[str, Any], how: str,
                       native_shape: list[int] | None) -> NativeCall:
        """The NativeCall of one ``grad`` request (convt_conformance/adapters/keras/worker.py METHODS), for a result or
        a failure (``native_shape`` None)."""
        rank, layer = x.ndim - 2, kind != "ops"
        lay = "NC" + "DHW"[3 - rank:] if kind == "layer_cf" else "N" + "DHW"[3 - rank:] + "C"
        perm = [*range(2, w.ndim), 1, 0]
        inverse = [int(i) for i in np.argsort(perm)]
        what = {"grad_input": f"x ({lay})",
                "grad_weight": "layer.kernel variable (*K, C_out, C_in)" if layer else "kernel (*K, C_out, C_in)",
                "grad_bias": "layer.bias variable (C_out,)" if layer else "bias (C_out,)"}[quantity]
        back = {"grad_input": "identity" if kind == "layer_cf" else "move channels first",
                "grad_weight": f"permute {tuple(inverse)} (inverse of {tuple(perm)}); no flip",
                "grad_bias": "identity"}[quantity]
        method = gradient_method(backend, not layer)
        forward_call = self._function(kind, rank) + ("(...) + keras.ops.add(bias)" if b is not None and not layer
                                                     else "(...)")
        return self._native_call(
            backend, kind, x, w, b, self._grad_kwargs(kwargs, wrt),
            f"{how}: padding={kwargs['padding']!r}, output_padding={kwargs['output_padding']!r}",
            f"{method} around {forward_call} (KERAS_BACKEND={backend}); this check: {quantity}",
            method=method, differentiated=what, one_backward_pass_for=list(wrt), cotangent_layout=lay,
            native_gradient_shape=native_shape, gradient_to_canonical=back)

    # --- reproducers (conformance repro) ---
    def repro_call(self, native_call: dict) -> str | None:
        """The recorded call (calls.py ``conv_transpose``) with its layout transposes:
        convt_conformance/adapters/keras/repro.py."""
        from convt_conformance.adapters.keras.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """The worker's ``grad`` request re-enacted (the backend's autodiff around the recorded
        call, cotangent in the output's layout, gradient back to canonical): convt_conformance/adapters/keras/repro.py."""
        from convt_conformance.adapters.keras.repro import gradient_source

        return gradient_source(native_call, quantity)

    def repro_prelude(self, native_call: dict) -> str:
        """``KERAS_BACKEND`` and the backend's precision flags, before keras is imported."""
        from convt_conformance.adapters.keras.repro import prelude

        return prelude(native_call)
