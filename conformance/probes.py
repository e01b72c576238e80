"""Convention probes: discover each native API's weight convention instead of trusting it.

Each framework's native API is called with a *naive* mapping (the canonical weight's first two
axes put in the API's two channel slots, spatial axes where its layout wants them, no flip)
after one of four candidate transforms of the canonical weight ``(C_in, C_out, kH, kW)``:
identity, spatial flip, in/out swap, or both; and with the input channels-first or
channels-last. Probe inputs are asymmetric (C_in = C_out = 2 so every candidate is callable,
a 2x3 kernel, a 3x4 input, stride (2, 1)), so exactly one candidate can match the reference.
The discovered transform is compared with the one the adapter declares; a framework that
changes a convention in a release shows up here as a disagreement.
"""

from __future__ import annotations

import numpy as np

from adapters import numpy_reference as ref

TRANSFORMS = ("identity", "spatial flip", "in/out swap", "in/out swap + spatial flip")
STRIDE = (2, 1)

# What each adapter declares, in the same vocabulary (see the adapter modules' docstrings).
DECLARED = {
    ("torch", "conv_transpose2d"): ("identity", "channels-first"),
    ("tensorflow", "conv2d_transpose"): ("in/out swap", "channels-last"),
    ("jax", "conv_transpose"): ("in/out swap + spatial flip", "channels-first"),
    ("jax", "conv_general_dilated"): ("in/out swap + spatial flip", "channels-first"),
}


def _transform(w: np.ndarray, name: str) -> np.ndarray:
    if "swap" in name:
        w = np.swapaxes(w, 0, 1)
    if "flip" in name:
        w = w[:, :, ::-1, ::-1]
    return np.ascontiguousarray(w)


def _probe_inputs():
    rng = np.random.default_rng(20261122)
    x = rng.integers(-3, 4, (1, 2, 3, 4)).astype(np.float64)
    w = rng.integers(-3, 4, (2, 2, 2, 3)).astype(np.float64)
    expected = ref.conv_transpose_scatter(x, w, stride=STRIDE, padding=((0, 0), (0, 0)),
                                          output_padding=(0, 0), dilation=(1, 1))
    return x, w, expected


def _naive_calls():
    """(adapter, api) -> f(x_nchw, w_slots, layout) -> output NCHW, per installed framework."""
    calls = {}
    try:
        import torch

        def torch_call(x, w, layout):
            if layout != "channels-first":
                raise ValueError("torch's conv_transpose2d takes NCHW only")
            return torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w),
                                                        stride=STRIDE).numpy()
        calls[("torch", "conv_transpose2d")] = torch_call
    except ImportError:
        pass
    try:
        import tensorflow as tf

        def tf_call(x, w, layout):
            wk = np.transpose(w, (2, 3, 0, 1))  # naive: (A, B, kH, kW) -> (kH, kW, A, B)
            out_sp = [(3 - 1) * STRIDE[0] + 2, (4 - 1) * STRIDE[1] + 3]
            if layout == "channels-last":
                y = tf.nn.conv2d_transpose(np.moveaxis(x, 1, -1), wk, [1, *out_sp, wk.shape[2]],
                                           STRIDE, "VALID", data_format="NHWC")
                return np.moveaxis(y.numpy(), -1, 1)
            y = tf.nn.conv2d_transpose(x, wk, [1, wk.shape[2], *out_sp], STRIDE, "VALID", data_format="NCHW")
            return y.numpy()
        calls[("tensorflow", "conv2d_transpose")] = tf_call
    except ImportError:
        pass
    try:
        import jax  # noqa: F401
        from jax import lax

        # JAX's layouts are chosen by dimension_numbers: probed as ('NCHW', 'OIHW', 'NCHW'),
        # the weight's first axis into the first-named slot (O), no transpose_kernel.
        dn = ("NCHW", "OIHW", "NCHW")

        def jax_ct(x, w, layout):
            if layout != "channels-first":
                raise ValueError("layout is a dimension_numbers argument; probed channels-first")
            # 'VALID' is the forward conv's padding in every JAX release (explicit pads are not).
            return np.asarray(lax.conv_transpose(x, w, STRIDE, "VALID", dimension_numbers=dn,
                                                 transpose_kernel=False, precision=lax.Precision.HIGHEST))

        def jax_cgd(x, w, layout):
            if layout != "channels-first":
                raise ValueError("layout is a dimension_numbers argument; probed channels-first")
            return np.asarray(lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (2, 2)], lhs_dilation=STRIDE,
                                                       dimension_numbers=dn, precision=lax.Precision.HIGHEST))
        calls[("jax", "conv_transpose")] = jax_ct
        calls[("jax", "conv_general_dilated")] = jax_cgd
    except ImportError:
        pass
    return calls


def discover_conventions(frameworks: list[str] | None = None) -> list[dict]:
    """One row per installed native API: discovered vs declared transform and layout."""
    x, w, expected = _probe_inputs()
    rows = []
    for (adapter, api), call in _naive_calls().items():
        if frameworks and adapter not in frameworks:
            continue
        matches = []
        for layout in ("channels-first", "channels-last"):
            for t in TRANSFORMS:
                try:
                    out = call(x, _transform(w, t), layout)
                except Exception:  # that candidate cannot even be called: not it
                    continue
                if out.shape == expected.shape and np.allclose(out, expected, rtol=0, atol=1e-9):
                    matches.append((t, layout))
        declared = DECLARED.get((adapter, api))
        discovered = matches[0] if len(matches) == 1 else None
        rows.append({
            "adapter": adapter, "api": f"{adapter}.{api}",
            "discovered": (f"{discovered[0]}; {discovered[1]}" if discovered else
                           ("no candidate matches" if not matches else f"ambiguous: {matches}")),
            "declared": f"{declared[0]}; {declared[1]}" if declared else "not declared",
            "agrees": discovered is not None and discovered == declared,
            "naive_mapping": "weight axes (A, B, kH, kW) into the API's two channel slots and spatial axes, no flip",
        })
    return rows
