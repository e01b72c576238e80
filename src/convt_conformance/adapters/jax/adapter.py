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

Compiled functions are cached per (api, static hyper-parameters, precision); ``jax.jit``
then caches per shape/dtype. The persistent compilation cache is enabled when
``CONFORMANCE_JAX_CACHE`` names a directory.

Gradient apis (``<api>:grad_input`` / ``:grad_weight`` / ``:grad_bias``): ``jax.vjp`` of the same
jitted function, the pullback jitted once per shape for all three gradients; the weight gradient of
``conv_general_dilated`` is mapped back through the inverse of the regroup + flip.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.jax import paths as jax_paths
from convt_conformance.adapters.path_subsets import split_api
from convt_conformance.model.apis import (
    forward_api,
    gradient_applies,
    gradient_label,
    gradient_quantity,
    with_gradients,
)
from convt_conformance.model.dtypes import numpy_dtype

# XLA preallocates 75% of GPU memory per process; with one process per xdist worker the second
# would fail. Allocate on demand instead (set before JAX is imported; the environment wins).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


@functools.lru_cache(maxsize=1)
def has_consistent_padding() -> bool:
    """Whether this JAX's lax.conv_transpose takes ``use_consistent_padding`` (newer releases)."""
    import inspect

    from jax import lax

    return "use_consistent_padding" in inspect.signature(lax.conv_transpose).parameters


def regroup_flip(w: np.ndarray, groups: int) -> np.ndarray:
    """Canonical ``(C_in, C_out/g, *K)`` -> forward-conv ``(C_out, C_in/g, *K)``, spatially flipped.

    A pure layout change (reshape/transpose/reverse): no arithmetic."""
    cin, cog = w.shape[:2]
    k = w.shape[2:]
    wg = w.reshape(groups, cin // groups, cog, *k)
    wg = np.swapaxes(wg, 1, 2).reshape(groups * cog, cin // groups, *k)
    return wg[(Ellipsis,) + (slice(None, None, -1),) * len(k)]


# --- string padding (README "String padding"): the case's word passed as JAX's own string ---
def string_padding(case) -> str | None:
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
    apis = (*with_gradients(("conv_transpose", "conv_general_dilated")), *jax_paths.PATH_APIS)
    order = 30

    def __init__(self) -> None:
        self._precision = "strict"
        self._path: str | None = None  # execution path of the call in progress (jax_paths.run_path)

    def _import(self):
        import jax  # noqa: F401

    def probes(self):
        # JAX's layouts are chosen by dimension_numbers: probed as ('NCHW', 'OIHW', 'NCHW'), the
        # weight's first axis into the first-named slot (O), no transpose_kernel.
        dn = ("NCHW", "OIHW", "NCHW")

        def channels_first(layout: str) -> None:
            if layout != "channels-first":
                raise ValueError("layout is a dimension_numbers argument; probed channels-first")

        def ct(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            from jax import lax

            channels_first(layout)
            # 'VALID' is the forward conv's padding in every JAX release (explicit pads are not).
            return np.asarray(lax.conv_transpose(x, w, stride, "VALID", dimension_numbers=dn,
                                                 transpose_kernel=False, precision=lax.Precision.HIGHEST))

        def cgd(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            from jax import lax

            channels_first(layout)
            pads = [(k - 1, k - 1) for k in w.shape[2:]]
            return np.asarray(lax.conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=stride,
                                                       dimension_numbers=dn, precision=lax.Precision.HIGHEST))
        declared = ("in/out swap + spatial flip", "channels-first")
        return [ProbeCall("conv_transpose", declared, ct), ProbeCall("conv_general_dilated", declared, cgd)]

    def devices(self):
        import jax

        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def configure(self, precision):
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

    def api_label(self, api, rank):
        return gradient_label(forward_api(api), api)

    def applies(self, case, api):
        # gradients of invalid / bias-free cases mean nothing; which cases a path column runs
        # on is the run profile's choice (convt_conformance/loading/profiles.yaml, `within`)
        return gradient_applies(case, api)

    def supports(self, case, api, device, dtype):
        if "@" in api:  # an execution path supports what its base API does
            return self.supports(case, split_api(api)[0], device, dtype)
        api = forward_api(api)
        if api == "conv_transpose" and case.groups != 1:
            return "jax.lax.conv_transpose has no feature_group_count (groups) argument"
        if case.expected_error:
            return None
        if case.rank not in (1, 2, 3):
            return f"spatial rank {case.rank} has no layout string"
        if api == "conv_transpose" and case.groups != 1:
            return "jax.lax.conv_transpose has no feature_group_count (groups) argument"
        return None

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _compiled(api: str, rank: int, stride: tuple, pads: tuple, dilation: tuple, groups: int,
                  precision: str | None, with_bias: bool, consistent_padding: bool, path: str | None = None):
        import jax
        from jax import lax

        sp = _SPATIAL[rank]
        dn = (f"NC{sp}", f"OI{sp}", f"NC{sp}")
        prec = lax.Precision.HIGHEST if precision == "strict" else None
        if api == "conv_transpose":
            # Without use_consistent_padding (older JAX), explicit pads are the transposed conv's own.
            extra = {"use_consistent_padding": True} if consistent_padding else {}

            def conv(x, w):
                return lax.conv_transpose(x, w, stride, pads if isinstance(pads, str) else list(pads),
                                          rhs_dilation=dilation,
                                          dimension_numbers=dn, transpose_kernel=True,
                                          precision=prec, **extra)
        else:
            def conv(x, w):
                return lax.conv_general_dilated(x, w, (1,) * rank, list(pads), lhs_dilation=stride,
                                                rhs_dilation=dilation, dimension_numbers=dn,
                                                feature_group_count=groups, precision=prec)
        if path:  # execution paths (eager dispatch, vmap): convt_conformance/adapters/jax/paths.py
            return jax_paths.wrap(path, conv, with_bias, rank)
        if with_bias:  # bias added in the same compiled function: one compile per shape
            return jax.jit(lambda x, w, b: conv(x, w) + b.reshape((1, -1) + (1,) * rank))
        return jax.jit(conv)

    def run(self, case, api, device, dtype, x, w, b, cotangent=None):
        if "@" in api:  # execution paths: the base API's translation, the call wrapped
            return jax_paths.run_path(self, case, api, device, dtype, x, w, b)
        quantity = gradient_quantity(api)
        api = forward_api(api)
        import jax

        rank = x.ndim - 2
        consistent = has_consistent_padding()
        pads: tuple[tuple[int, int], ...] | str  # explicit pairs, or a string padding passed as such
        # Pads of the stride-dilated input (the fractionally strided form).
        dilated_pads = tuple((d * (kk - 1) - pb, d * (kk - 1) - pe + op) for d, kk, (pb, pe), op in
                             zip(case.dilation, w.shape[2:], case.padding, case.output_padding))
        if api == "conv_transpose":
            wn, perm, flip = w, None, True
            transform = "none given: passed as forward-conv OI* kernel; transpose_kernel=True swaps I/O and flips"
            if consistent:
                pads = tuple((pb, pe - op) for (pb, pe), op in zip(case.padding, case.output_padding))
                mapping = "padding=(begin, end - output_padding), use_consistent_padding=True"
            else:
                pads = dilated_pads
                mapping = ("padding=(d*(k-1)-begin, d*(k-1)-end+output_padding): this JAX has no "
                           "use_consistent_padding, explicit pads apply to the dilated input")
        else:
            pads = dilated_pads
            wn = regroup_flip(w, case.groups) if case.groups >= 1 and w.shape[0] % max(case.groups, 1) == 0 else w
            mapping = "padding=(d*(k-1)-begin, d*(k-1)-end+output_padding) on the stride-dilated input"
            transform = "regroup (C_in, C_out/g, *K) -> (C_out, C_in/g, *K); spatial flip"
            perm, flip = [1, 0, *range(2, w.ndim)], True
        native = string_padding(case) if api == "conv_transpose" and case.padding_mode else None
        if native is not None:
            pads, mapping = native, f"padding={native!r} (the case's `{case.padding_mode}`), JAX's string meaning"
        fn = self._compiled(api, rank, tuple(case.stride), pads, tuple(case.dilation), case.groups,
                            self._precision, b is not None, consistent, self._path)
        if quantity:
            return self._run_gradient(case, api, quantity, device, dtype, x, wn, b, cotangent, fn,
                                      dict(transform=transform, perm=perm, flip=flip, mapping=mapping, pads=pads,
                                           consistent=consistent))
        dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        ndt = numpy_dtype(dtype)  # cast on the host: a jnp cast would compile once per shape
        args = [jax.device_put(np.ascontiguousarray(a, dtype=ndt), dev) for a in
                ((x, wn) if b is None else (x, wn, b))]
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
                       "device": str(dev), "placed_on": None},
            precision={"precision": "HIGHEST" if self._precision == "strict" else None},
        )
        try:
            y = fn(*args)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = sorted(str(d) for d in y.devices())
        res = np.asarray(jax.device_get(y)).astype(np.float64)
        platforms = sorted({d.platform for d in y.devices()})
        return RunOutput(res, str(y.dtype), call, placed_on=",".join(platforms))

    def repro_call(self, native_call):
        """The recorded ``jax.lax`` call, jitted as the adapter does or on its path (``@eager``,
        ``@vmap``): convt_conformance/adapters/jax/repro.py."""
        from convt_conformance.adapters.jax.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call, quantity):
        """``jax.vjp`` of the recorded call (pullback jitted): convt_conformance/adapters/jax/repro.py."""
        from convt_conformance.adapters.jax.repro import gradient_source

        return gradient_source(native_call, quantity)

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _compiled_vjp(fn):
        """``jax.jit`` of the pullback of the forward's compiled ``fn`` (the same cached function the
        forward check runs), returning the cotangents of all its arguments ``(x, w[, b])``: one
        compile per shape serves the three gradient checks of a (case, dtype) (a jit per gradient
        would compile three times; the compile, not the run, is what a JAX check costs)."""
        import jax

        def pullback(g, *args):
            _, vjp = jax.vjp(fn, *args)
            return vjp(g)
        return jax.jit(pullback)

    def _run_gradient(self, case, api, quantity, device, dtype, x, wn, b, g, fn, how):
        """``jax.vjp`` of the forward's jitted function at ``(x, w_native[, b])`` pulled back with
        ``g`` (canonical NC* layout, the output's). Back to canonical: grad_input and grad_bias are
        already; grad_weight is the native argument's gradient: identity for ``conv_transpose``
        (the canonical weight is passed as is), the inverse of the regroup + flip for
        ``conv_general_dilated`` (a layout change: the gradient of a permuted/reversed argument is
        the permuted/reversed gradient)."""
        import jax

        if g is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        index = {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}[quantity]
        pull = self._compiled_vjp(fn)
        dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        ndt = numpy_dtype(dtype)
        args = [jax.device_put(np.ascontiguousarray(a, dtype=ndt), dev) for a in
                ((g, x, wn) if b is None else (g, x, wn, b))]
        sp = _SPATIAL.get(x.ndim - 2, "?")
        back = ("inverse of the regroup + flip: flip back, (C_out, C_in/g, *K) -> (C_in, C_out/g, *K)"
                if quantity == "grad_weight" and api == "conv_general_dilated" else "identity")
        call = NativeCall(
            function=f"jax.vjp(jax.jit(jax.lax.{api}{' + b' if b is not None else ''}), x, w"
                     f"{', b' if b is not None else ''})[1](g)[{index}] (pullback jitted)",
            input_layout=f"NC{sp}", weight_layout=f"OI{sp}", output_layout=f"NC{sp}",
            weight_transform=how["transform"], weight_permutation=how["perm"], weight_flip=how["flip"],
            padding_mapping=how["mapping"],
            arguments={"padding": how["pads"] if isinstance(how["pads"], str) else [list(p) for p in how["pads"]],
                       "rhs_dilation": list(case.dilation), "use_consistent_padding": how["consistent"],
                       "stride_or_lhs_dilation": list(case.stride), "groups": case.groups,
                       "method": "jax.vjp", "differentiated": ("x", "w (native)", "b")[index],
                       "gradient_to_canonical": back, "device": str(dev), "placed_on": None},
            precision={"precision": "HIGHEST" if self._precision == "strict" else None},
        )
        try:
            grad = pull(*args)[index]
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = sorted(str(d) for d in grad.devices())
        native = np.asarray(jax.device_get(grad)).astype(np.float64)
        if quantity == "grad_weight" and api == "conv_general_dilated":
            native = unregroup_flip(native, case.groups)
        platforms = sorted({d.platform for d in grad.devices()})
        return RunOutput(native, str(grad.dtype), call, placed_on=",".join(platforms))


def unregroup_flip(wn: np.ndarray, groups: int) -> np.ndarray:
    """Inverse of :func:`regroup_flip`: forward-conv ``(C_out, C_in/g, *K)`` flipped ->
    canonical ``(C_in, C_out/g, *K)``. A pure layout change."""
    k = wn.shape[2:]
    wn = wn[(Ellipsis,) + (slice(None, None, -1),) * len(k)]
    cout, cig = wn.shape[:2]
    wg = wn.reshape(groups, cout // groups, cig, *k)
    return np.swapaxes(wg, 1, 2).reshape(groups * cig, cout // groups, *k)
