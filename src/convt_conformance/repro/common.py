"""The part every reproducer script shares (``conformance repro``; the report shows it once).

Script text, appended after each script's check-specific head (convt_conformance/repro/scripts.py), which
defines the globals used here: ``x, w, b`` (canonical float64 tensors rounded to the dtype),
``G`` (the cotangent of a gradient check, canonical output layout ``(N, C_out, *out)``, else
None), ``QUANTITY`` (``grad_input`` / ``grad_weight`` / ``grad_bias`` or None), ``native(x, w, b)``
(the framework's call, output float64 in the canonical layout of the quantity) and the
case/tolerance constants.

Convention of the reference (docs/case-format.md, PyTorch's): input ``(N, C_in, *S)``, weight
``(C_in, C_out/groups, *K)`` unflipped, ``PADDING`` per-axis ``(begin, end)`` pairs cut from the
full scatter output, ``OUTPUT_PADDING`` added at its far end. The gradients are those of
``L = <G, y>``: dL/dx the forward correlation of G with the weight, dL/dw per tap the einsum of
x with the tap-shifted G, dL/db the sums of G; every sum runs over the pairs the definition
makes (no structural zeros, so a NaN/Inf meets no padding).

The comparison follows convt_conformance/checking/compare.py: shape; NaN/±Inf positions of the exact result
rounded to the output dtype (the overflow band and order-dependent overflow accepted); finite
values within the per-element tolerance; then subnormal outputs flushed to zero
(``subnormal-flush``).
"""

from __future__ import annotations

_REFERENCE = '''
def scatter(x, w, b):
    """The definition (canonical layout): every input element times the unflipped kernel
    (C_in, C_out/groups, *K) is added at offset i*stride, taps dilation apart, into a buffer of
    the full size plus output_padding at the far end; (begin, end) padding is cut from it."""
    n, cin, sp = x.shape[0], x.shape[1], x.shape[2:]
    g, cog, k = GROUPS, w.shape[1], w.shape[2:]
    full = [(s - 1) * st + d * (kk - 1) + 1 + op
            for s, st, d, kk, op in zip(sp, STRIDE, DILATION, k, OUTPUT_PADDING)]
    buf = np.zeros((n, g, cog, *full))
    xg = x.reshape(n, g, cin // g, *sp)
    wg = w.reshape(g, cin // g, cog, *k)
    with np.errstate(invalid="ignore", over="ignore"):
        for tap in np.ndindex(*k):
            contrib = np.einsum("ngc...,gco->ngo...", xg, wg[(Ellipsis, *tap)])
            dest = tuple(slice(d * t, d * t + st * (s - 1) + 1, st)
                         for d, t, st, s in zip(DILATION, tap, STRIDE, sp))
            buf[(slice(None),) * 3 + dest] += contrib
        crop = tuple(slice(pb, length - pe) for (pb, pe), length in zip(PADDING, full))
        out = buf[(slice(None),) * 3 + crop]
        out = out.reshape(n, g * cog, *out.shape[3:])
        if b is not None:
            out = out + b.reshape((1, -1) + (1,) * len(sp))
    return out


def tap_pairs(sp, osp, tap):
    """For one kernel tap: (input slice, output slice) of the pairs j = i*stride + dilation*tap -
    pad_begin that lie inside the output (None: the tap reaches no output)."""
    xs, ys = [], []
    for n, o, t, s, d, (pb, _) in zip(sp, osp, tap, STRIDE, DILATION, PADDING):
        off = d * t - pb
        lo, hi = max(0, -(off // s)), min(n - 1, (o - 1 - off) // s)
        if hi < lo:
            return None
        xs.append(slice(lo, hi + 1))
        ys.append(slice(lo * s + off, hi * s + off + 1, s))
    return (slice(None),) * 3 + tuple(xs), (slice(None),) * 3 + tuple(ys)


def gradient(q, x, w, g):
    """dL/dx (N, C_in, *S), dL/dw (C_in, C_out/groups, *K) or dL/db (C_out,) of L = <g, y>."""
    if q == "grad_bias":
        return g.sum(axis=(0, *range(2, g.ndim)))
    n, cin, gr, cog, k = x.shape[0], x.shape[1], GROUPS, w.shape[1], w.shape[2:]
    xg, wg = x.reshape(n, gr, cin // gr, *x.shape[2:]), w.reshape(gr, cin // gr, cog, *k)
    gg = g.reshape(n, gr, cog, *g.shape[2:])
    out = np.zeros(xg.shape if q == "grad_input" else wg.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        for tap in np.ndindex(*k):
            pairs = tap_pairs(x.shape[2:], g.shape[2:], tap)
            if pairs is None:
                continue
            xs, ys = pairs
            if q == "grad_input":  # the forward correlation of g with the weight
                out[xs] += np.einsum("ngo...,gco->ngc...", gg[ys], wg[(Ellipsis, *tap)])
            else:  # per tap: input times the tap-shifted cotangent, summed over batch and positions
                sp = "ijk"[:len(k)]
                out[(Ellipsis, *tap)] = np.einsum(f"ngc{sp},ngo{sp}->gco", xg[xs], gg[ys])
    return out.reshape(x.shape if q == "grad_input" else w.shape)


def reference(x, w, b):
    """The exact (float64) result of the checked quantity: the output, or its gradient."""
    return scatter(x, w, b) if QUANTITY is None else gradient(QUANTITY, x, w, G)


def magnitude(x, w, b):
    """The same formula on absolute values (the tolerance's R)."""
    if QUANTITY is None:
        return scatter(np.abs(x), np.abs(w), None if b is None else np.abs(b))
    return gradient(QUANTITY, np.abs(x), np.abs(w), np.abs(G))
'''

_MAIN = '''
def tolerance(ref, mag):
    """The suite's per-element bound with the recorded coefficients."""
    if "atol" in TOL:
        return TOL["atol"] + TOL["rtol"] * np.abs(ref)
    return TOL["coefficient_of_R"] * mag + TOL["u_out"] * np.abs(ref) + TOL["floor"]


def compare(out, expected, tol, mag):
    """outcome: shape; NaN/Inf where the exact result rounded to OUT_DTYPE has them (within tol of
    the overflow threshold either; where partial sums may overflow the accumulator, accepted);
    |error| <= tol per element; then outputs flushed to zero where the result is subnormal."""
    if out.shape != expected.shape:
        print(f"shape {list(out.shape)}, expected {list(expected.shape)}")
        return "shape"
    if out.size == 0:
        print("empty output, shapes equal")
        return "pass"
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = expected.astype(OUT_NP_DTYPE).astype(np.float64)
        a_inf, e_inf = np.isinf(out), np.isinf(rounded)
        bad_nf = (np.isnan(out) != np.isnan(rounded)) | (a_inf != e_inf) | (
            a_inf & e_inf & (np.sign(out) != np.sign(rounded)))
        emag = np.abs(np.where(np.isfinite(expected), expected, 0.0))
        band = np.isfinite(expected) & (emag - tol < OVERFLOW_AT) & (emag + tol >= OVERFLOW_AT)
        bad_nf &= ~(band & ((a_inf & (np.sign(out) == np.sign(expected))) | np.isfinite(out)))
        bad_nf &= ~((mag > ACC_MAX) & np.isfinite(expected) & ~np.isfinite(out))
        finite = np.isfinite(out) & np.isfinite(expected)
        err = np.where(finite, np.abs(out - expected), 0.0)
    over = finite & (err > tol)
    print(f"max abs error: {err.max():.6g}")
    if bad_nf.any():
        idx = tuple(int(i) for i in np.argwhere(bad_nf)[0])
        print(f"mismatches: {int(bad_nf.sum())} / {out.size} (NaN/Inf positions differ)")
        print(f"worst index: {idx}: actual {float(out[idx])!r}, expected {float(rounded[idx])!r}")
        return "nonfinite"
    ratio = np.where(over, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio if over.any() else err)), err.shape))
    print(f"mismatches: {int(over.sum())} / {out.size} (|error| > per-element tolerance)")
    print(f"worst index: {idx}: actual {float(out[idx])!r}, expected {float(expected[idx])!r}, "
          f"|error| {err[idx]:.6g}, tolerance {tol[idx]:.6g}")
    if over.any():
        return "value"
    floor = TOL.get("floor", 0.0)
    with np.errstate(invalid="ignore"):
        flushed = (np.isfinite(rounded) & (rounded != 0) & (np.abs(rounded) < OUT_TINY) & (out == 0)
                   & (np.abs(expected) > np.maximum(tol - floor, 0.0)))
    if flushed.any():
        idx = tuple(int(i) for i in np.argwhere(flushed)[0])
        print(f"subnormal results flushed to zero: {int(flushed.sum())} / {out.size}; first at {idx}: "
              f"actual {float(out[idx])!r}, correctly rounded {float(rounded[idx])!r} (below the smallest "
              f"normal {OUT_TINY!r}; within tolerance only through its floor {floor:.3g})")
        return "subnormal-flush"
    return "pass"


def main():
    print(f"check: {CHECK_ID}")
    try:
        import importlib
        import importlib.metadata
        version = getattr(importlib.import_module(MODULE), "__version__", None) or importlib.metadata.version(MODULE)
        print(f"framework: {MODULE} {version} (recorded: {RECORDED_VERSION})")
    except Exception as exc:  # noqa: BLE001
        print(f"framework: {MODULE} not importable: {exc}")
        raise SystemExit(2)
    if RECORDED in ("crash", "timeout"):
        print("the recorded check killed its process: dying in the call below (signal, abort) "
              "reproduces it", flush=True)
    try:
        out, native_dtype = native(x, w, b)
    except Exception as exc:  # noqa: BLE001
        print(f"framework raised: {type(exc).__name__}: {str(exc)[:600]}")
        outcome = "rejected" if EXPECT_ERROR else "error"
    else:
        if EXPECT_ERROR:
            print(f"framework raised: no (invalid configuration accepted; output shape {list(out.shape)})")
            outcome = "accepted-invalid"
        else:
            ref = reference(x, w, b)
            mag = magnitude(x, w, b)
            expected = ref if EXPECTED is None else EXPECTED
            if QUANTITY is not None:  # a gradient beyond the dtype's range rounds to +-Inf (IEEE)
                with np.errstate(over="ignore"):
                    r = ref.astype(OUT_NP_DTYPE).astype(np.float64)
                expected = np.where(np.isfinite(ref) & np.isinf(r), r, ref)
            outcome = compare(out, expected, tolerance(ref, mag), mag)
            if outcome == "pass" and native_dtype not in (None, DTYPE) and OUT_DTYPE == DTYPE:
                print(f"the framework returned {native_dtype}, not the {DTYPE} asked for (values within "
                      f"the {DTYPE} tolerance)")
                outcome = "dtype"
    print(f"outcome: {outcome} (recorded: {RECORDED})")
    reproduced = outcome == RECORDED and outcome not in ("pass", "rejected")
    if not reproduced and {outcome, RECORDED} <= {"value", "nonfinite"}:  # wrong numbers either way
        print("wrong values as recorded, of another kind this time (the output varies from call to call)")
        reproduced = True
    if not reproduced and KNOWN_REASON and outcome in ("pass", "rejected"):
        print("the known disagreement does not show here (an xpass: fixed in this release?)")
    print("REPRODUCED" if reproduced else "NOT REPRODUCED")


if __name__ == "__main__":
    main()
'''

# The same in every script (the report shows it once): reference, tolerance, comparison, main.
COMMON_TAIL = _REFERENCE + "\n" + _MAIN
