"""The JAX adapter's weight translation (canonical ``(C_in, C_out/groups, *K)``, PyTorch's
convention, to what the lax calls take and back), shared by the adapter and its reproducer (which
embeds these functions' source)."""

from __future__ import annotations

import numpy as np


def regroup_flip(w: np.ndarray, groups: int) -> np.ndarray:
    """Canonical ``(C_in, C_out/g, *K)`` -> forward-conv ``(C_out, C_in/g, *K)``, spatially flipped.

    A pure layout change (reshape/transpose/reverse): no arithmetic."""
    cin, cog = w.shape[:2]
    k = w.shape[2:]
    wg = w.reshape(groups, cin // groups, cog, *k)
    wg = np.swapaxes(wg, 1, 2).reshape(groups * cog, cin // groups, *k)
    return wg[(Ellipsis,) + (slice(None, None, -1),) * len(k)]


def native_weight(w: np.ndarray, api: str, groups: int) -> np.ndarray:
    """The canonical weight as the lax call takes it (a layout change only): ``conv_transpose``
    as is (the forward conv's ``OI*`` kernel; ``transpose_kernel=True`` swaps and flips it),
    ``conv_general_dilated`` through :func:`regroup_flip`, or as is when ``groups`` does not divide
    ``C_in`` (an invalid case the call is to reject)."""
    if api == "conv_general_dilated" and groups >= 1 and w.shape[0] % groups == 0:
        return regroup_flip(w, groups)
    return w


def unregroup_flip(wn: np.ndarray, groups: int) -> np.ndarray:
    """Inverse of :func:`regroup_flip`: forward-conv ``(C_out, C_in/g, *K)`` flipped ->
    canonical ``(C_in, C_out/g, *K)``. A pure layout change."""
    k = wn.shape[2:]
    wn = wn[(Ellipsis,) + (slice(None, None, -1),) * len(k)]
    cout, cig = wn.shape[:2]
    wg = wn.reshape(groups, cout // groups, cig, *k)
    return np.swapaxes(wg, 1, 2).reshape(groups * cig, cout // groups, *k)
