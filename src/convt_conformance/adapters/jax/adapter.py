"""JAX adapter: ``jax.lax.conv_transpose`` and ``jax.lax.conv_general_dilated``.

``conv_transpose``: dimension_numbers ``(NC*, OI*, NC*)`` with the canonical weight given
as the *forward* conv's ``OI*`` kernel and ``transpose_kernel=True`` (JAX then swaps I/O and
flips the spatial axes itself); ``use_consistent_padding=True`` makes ``padding`` the forward
conv's (PyTorch's) padding; ``output_padding`` is folded into the end pad as
``(begin, end - output_padding)``. It has no ``feature_group_count``: groups > 1 unsupported.

``conv_general_dilated``: the fractionally-strided form: ``lhs_dilation=stride``,
``rhs_dilation=dilation``, window stride 1, pads ``(d*(k-1)-begin, d*(k-1)-end+output_padding)``,
the weight regrouped to ``(C_out, C_in/g, *K)`` and spatially flipped,
``feature_group_count=groups``.

The native call is convt_conformance/adapters/jax/calls.py's ``lax_conv`` (the reproducers embed
its source): it keeps one jitted function per (api, static hyper-parameters, precision, path);
``jax.jit`` then caches per shape/dtype. The persistent compilation cache is enabled when
``CONFORMANCE_JAX_CACHE`` names a directory.

Gradient apis (``<api>:grad_input`` / ``:grad_weight`` / ``:grad_bias``): ``jax.vjp`` of the same
jitted function, the pullback jitted once per shape for all three gradients; the weight gradient of
``conv_general_dilated`` is mapped back through the inverse of the regroup + flip.
"""

from __future__ import annotations

import copy
import functools
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.jax import calls as jax_calls
from convt_conformance.adapters.jax import paths as jax_paths
from convt_conformance.adapters.jax.calls import WRT
from convt_conformance.adapters.jax.layout import native_weight, unregroup_flip
from convt_conformance.adapters.path_subsets import split_api
from convt_conformance.model.apis import (
    forward_api,
    gradient_applies,
    gradient_label,
    gradient_quantity,
    with_gradients,
)

if TYPE_CHECKING:
    from convt_conformance.loading.cases import Case

# XLA preallocates 75% of GPU memory per process; with one process per xdist worker the second
# would fail. Allocate on demand instead (set before JAX is imported; the environment wins).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
# the native name of each gradient quantity's argument (calls.py ``lax_conv``'s ``wrt``)


@functools.lru_cache(maxsize=1)
def has_consistent_padding() -> bool:
    """Whether this JAX's lax.conv_transpose takes ``use_consistent_padding`` (newer releases)."""
    import inspect

    from jax import lax

    return "use_consistent_padding" in inspect.signature(lax.conv_transpose).parameters


# --- string padding (README "String padding"): the case's word passed as JAX's own string ---
def string_padding(case: Case) -> str | None:
    """'VALID' or 'SAME' for lax.conv_transpose when the case's padding_mode is ``valid`` or
    ``same``/``same_upper`` without output_padding (the string path takes none), else None (the
    canonical pads are mapped). JAX's 'VALID' is ``_conv_transpose_padding``'s: out =
    (n-1)*s + max(k_eff, s), which differs from the format's ``valid`` when s > k_eff (a finding,
    known_disagreements.yaml); 'SAME' gives out = n*s with the format's crop."""
    if case.padding_mode in ("valid", "same", "same_upper") and not any(case.mode_output_padding or ()):
        return "SAME" if case.padding_mode != "valid" else "VALID"
    return None


class JaxAdapter(Adapter):
    name = "jax"
    module = "jax"
    distributions = ("jax",)
    # the two APIs, their gradients (":grad_input", ...) and execution paths (convt_conformance/adapters/jax/paths.py)
    apis = (*with_gradients(jax_calls.LAX_APIS), *jax_paths.PATH_APIS)
    order = 30
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)

    @classmethod
    def release_requirements(cls, distribution: str, version: str) -> tuple[str, ...]:
        """jax and jaxlib are released in lock-step: a jax release runs with its own jaxlib."""
        return (f"jax=={version}", f"jaxlib=={version}") if distribution == "jax" else (f"{distribution}=={version}",)

    def __init__(self) -> None:
        self._precision = "strict"
        self._path: str | None = None  # execution path of the call in progress (jax_paths.run_path)

    @classmethod
    def process_environment(cls) -> dict[str, str]:
        """``CONFORMANCE_JAX_CACHE``: the persistent compilation cache (``configure`` enables it) in
        the user's cache folder, ``$XDG_CACHE_HOME/convt-conformance/jax``, else
        ``~/.cache/convt-conformance/jax``, never the working directory."""
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return {"CONFORMANCE_JAX_CACHE": os.path.join(base, "convt-conformance", "jax")}

    def _import(self) -> None:
        import jax  # noqa: F401

    def probes(self) -> list[ProbeCall]:
        # JAX's layouts are chosen by dimension_numbers: probed as ('NCHW', 'OIHW', 'NCHW'), the
        # weight's first axis into the first-named slot (O), no transpose_kernel.
        dn = ("NCHW", "OIHW", "NCHW")

        def channels_first(layout: str) -> None:
            if layout != "channels-first":
                raise ValueError("layout is a dimension_numbers argument; probed channels-first")

        def ct(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            channels_first(layout)
            # 'VALID' is the forward conv's padding in every JAX release (explicit pads are not).
            return jax_calls.lax_conv(x, w, api="conv_transpose", strides=list(stride), padding="VALID",
                                      rhs_dilation=[1, 1], dimension_numbers=list(dn), precision="highest",
                                      dtype=str(x.dtype), device="cpu", transpose_kernel=False)[0]

        def cgd(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            channels_first(layout)
            pads = [[k - 1, k - 1] for k in w.shape[2:]]
            return jax_calls.lax_conv(x, w, api="conv_general_dilated", strides=list(stride), padding=pads,
                                      rhs_dilation=[1, 1], dimension_numbers=list(dn), precision="highest",
                                      dtype=str(x.dtype), device="cpu")[0]
        declared = ("in/out swap + spatial flip", "channels-first")
        return [ProbeCall("conv_transpose", declared, ct), ProbeCall("conv_general_dilated", declared, cgd)]

    def devices(self) -> list[str]:
        import jax

        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 cases need it
        cache = os.environ.get("CONFORMANCE_JAX_CACHE")
        if cache:
            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        self._precision = precision
        if precision == "strict":
            jax.config.update("jax_default_matmul_precision", "highest")
        return {"precision_argument": "HIGHEST" if precision == "strict" else None,
                "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
                "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
                "XLA_PYTHON_CLIENT_ALLOCATOR": os.environ.get("XLA_PYTHON_CLIENT_ALLOCATOR")}

    def api_label(self, api: str, rank: int) -> str:
        return gradient_label(forward_api(api), api)

    def applies(self, case: Case, api: str) -> bool:
        # gradients of invalid / bias-free cases mean nothing; which cases a path column runs
        # on is the run profile's choice (convt_conformance/loading/profiles.yaml, `within`)
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        if "@" in api:  # an execution path supports what its base API does
            return self.supports(case, split_api(api)[0], device, dtype)
        api = forward_api(api)
        if api == "conv_transpose" and case.groups != 1:
            return "jax.lax.conv_transpose has no feature_group_count (groups) argument"
        if case.expected_error:
            if any(op < 0 for op in case.output_padding):
                # folded into the end pad, a negative output_padding is a larger crop: a valid lax
                # configuration, so lax could never be asked the invalid one
                return ("jax.lax has no output_padding argument (the adapter folds it into the end pad): a "
                        "negative output_padding has no native form")
            return None
        if case.rank not in (1, 2, 3):
            return f"spatial rank {case.rank} has no layout string"
        if api == "conv_transpose" and case.groups != 1:
            return "jax.lax.conv_transpose has no feature_group_count (groups) argument"
        return None

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _compiled(api: str, rank: int, stride: tuple[int, ...], pads: tuple[tuple[int, int], ...] | str,
                  dilation: tuple[int, ...], groups: int, precision: str | None,
                  consistent_padding: bool, path: str | None = None) -> dict[str, Any]:
        """The keyword arguments of calls.py's ``lax_conv`` that fix one configuration (lax_conv
        keeps one jitted function per configuration): everything but the dtype and device. Without
        use_consistent_padding (older JAX), explicit pads are the transposed conv's own."""
        sp = _SPATIAL[rank]
        kwargs: dict[str, Any] = {
            "api": api, "strides": list(stride), "padding": pads if isinstance(pads, str) else [list(p) for p in pads],
            "rhs_dilation": list(dilation), "dimension_numbers": [f"NC{sp}", f"OI{sp}", f"NC{sp}"],
            "precision": "highest" if precision == "strict" else None}
        if api == "conv_transpose":
            kwargs.update(transpose_kernel=True, use_consistent_padding=consistent_padding)
        else:
            kwargs.update(feature_group_count=groups)
        if path:  # execution paths (eager dispatch, vmap): convt_conformance/adapters/jax/paths.py
            kwargs.update(path=path)
        return kwargs

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if "@" in api:  # execution paths: the base API's translation, the call wrapped
            return jax_paths.run_path(self, case, api, device, dtype, x, w, b)
        quantity = gradient_quantity(api)
        api = forward_api(api)
        import jax

        rank = x.ndim - 2
        consistent = has_consistent_padding()
        pads: tuple[tuple[int, int], ...] | str  # explicit pairs, or a string padding passed as such
        # Pads of the stride-dilated input (the fractionally strided form).
        dilated_pads = tuple((int(d * (kk - 1) - pb), int(d * (kk - 1) - pe + op)) for d, kk, (pb, pe), op in
                             zip(case.dilation, w.shape[2:], case.padding, case.output_padding))
        if api == "conv_transpose":
            perm, flip = None, True
            transform = "none given: passed as forward-conv OI* kernel; transpose_kernel=True swaps I/O and flips"
            if consistent:
                pads = tuple((int(pb), int(pe - op)) for (pb, pe), op in zip(case.padding, case.output_padding))
                mapping = "padding=(begin, end - output_padding), use_consistent_padding=True"
            else:
                pads = dilated_pads
                mapping = ("padding=(d*(k-1)-begin, d*(k-1)-end+output_padding): this JAX has no "
                           "use_consistent_padding, explicit pads apply to the dilated input")
        else:
            pads = dilated_pads
            mapping = "padding=(d*(k-1)-begin, d*(k-1)-end+output_padding) on the stride-dilated input"
            transform = "regroup (C_in, C_out/g, *K) -> (C_out, C_in/g, *K); spatial flip"
            perm, flip = [1, 0, *range(2, w.ndim)], True
        wn = native_weight(w, api, case.groups)
        native = string_padding(case) if api == "conv_transpose" and case.padding_mode else None
        if native is not None:
            pads, mapping = native, f"padding={native!r} (the case's `{case.padding_mode}`), JAX's string meaning"
        static = self._compiled(api, rank, tuple(int(s) for s in case.stride), pads,
                                tuple(int(d) for d in case.dilation), int(case.groups), self._precision, consistent,
                                self._path)
        kwargs = {**copy.deepcopy(static), "dtype": dtype, "device": device}
        if quantity:
            return self._run_gradient(case, api, quantity, x, wn, b, cotangent, kwargs,
                                      dict(transform=transform, perm=perm, flip=flip, mapping=mapping))
        dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        sp = _SPATIAL.get(rank, "?")
        call = NativeCall(
            function=f"jax.lax.{api}", input_layout=f"NC{sp}", weight_layout=f"OI{sp}",
            output_layout=f"NC{sp}", weight_transform=transform, weight_permutation=perm,
            weight_flip=flip, padding_mapping=mapping,
            arguments={"strides" if api == "conv_transpose" else "lhs_dilation": list(case.stride),
                       "padding": pads if isinstance(pads, str) else [list(p) for p in pads], "rhs_dilation": list(case.dilation),
                       **({"feature_group_count": case.groups} if api != "conv_transpose" else
                          {"transpose_kernel": True, "use_consistent_padding": consistent}),
                       "bias": "added with + inside the same jit" if b is not None else None,
                       "device": str(dev), "placed_on": None, "call": "lax_conv", "call_kwargs": kwargs},
            precision={"precision": "HIGHEST" if self._precision == "strict" else None},
        )
        try:
            y, placed = jax_calls.lax_conv(x, wn, b, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = sorted(placed)
        return RunOutput(y.astype(np.float64), str(y.dtype), call, placed_on=",".join(sorted(set(placed.values()))))

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded ``jax.lax`` call, jitted as the adapter does or on its path (``@eager``,
        ``@vmap``): convt_conformance/adapters/jax/repro.py."""
        from convt_conformance.adapters.jax.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """``jax.vjp`` of the recorded call (pullback jitted): convt_conformance/adapters/jax/repro.py."""
        from convt_conformance.adapters.jax.repro import gradient_source

        return gradient_source(native_call, quantity)

    def _run_gradient(self, case: Case, api: str, quantity: str, x: np.ndarray, wn: np.ndarray,
                      b: np.ndarray | None, g: np.ndarray | None, kwargs: dict[str, Any],
                      how: dict[str, Any]) -> RunOutput:
        """``jax.vjp`` of the forward's jitted function at ``(x, w_native[, b])`` pulled back with
        ``g`` (canonical NC* layout, the output's), the pullback jitted (calls.py ``lax_conv`` with
        ``wrt``). Back to canonical: grad_input and grad_bias are already; grad_weight is the
        native argument's gradient: identity for ``conv_transpose`` (the canonical weight is passed
        as is), the inverse of the regroup + flip for ``conv_general_dilated`` (a layout change: the
        gradient of a permuted/reversed argument is the permuted/reversed gradient)."""
        import jax

        if g is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        index = {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}[quantity]
        kwargs = {**kwargs, "wrt": WRT[quantity]}
        dev = jax.devices("gpu" if kwargs["device"] == "gpu" else "cpu")[0]
        sp = _SPATIAL.get(x.ndim - 2, "?")
        back = ("inverse of the regroup + flip: flip back, (C_out, C_in/g, *K) -> (C_in, C_out/g, *K)"
                if quantity == "grad_weight" and api == "conv_general_dilated" else "identity")
        call = NativeCall(
            function=f"jax.vjp(jax.jit(jax.lax.{api}{' + b' if b is not None else ''}), x, w"
                     f"{', b' if b is not None else ''})[1](g)[{index}] (pullback jitted)",
            input_layout=f"NC{sp}", weight_layout=f"OI{sp}", output_layout=f"NC{sp}",
            weight_transform=how["transform"], weight_permutation=how["perm"], weight_flip=how["flip"],
            padding_mapping=how["mapping"],
            arguments={"padding": kwargs["padding"], "rhs_dilation": list(case.dilation),
                       "use_consistent_padding": kwargs.get("use_consistent_padding", False),
                       "stride_or_lhs_dilation": list(case.stride), "groups": case.groups,
                       "method": "jax.vjp", "differentiated": ("x", "w (native)", "b")[index],
                       "gradient_to_canonical": back, "device": str(dev), "placed_on": None,
                       "call": "lax_conv", "call_kwargs": kwargs},
            precision={"precision": "HIGHEST" if self._precision == "strict" else None},
        )
        try:
            grad, placed = jax_calls.lax_conv(x, wn, b, g, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = sorted(placed)
        native = grad.astype(np.float64)
        if quantity == "grad_weight" and api == "conv_general_dilated":
            native = unregroup_flip(native, case.groups)
        return RunOutput(native, str(grad.dtype), call, placed_on=",".join(sorted(set(placed.values()))))


