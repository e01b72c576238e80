"""How a case's padding reaches Paddle's ``padding`` argument of ``conv{n}d_transpose`` /
``Conv{n}DTranspose`` (Paddle's documentation of the argument, paddle 3.3.1):

- explicit: "a list/tuple of ``dim`` ints" (symmetric, cut from both ends of each spatial axis)
  or "a list/tuple of pairs" for every axis, batch and channel included (``[[0, 0], [0, 0],
  [b1, e1], ...]`` for NC..., ``[[0, 0], [b1, e1], ..., [0, 0]]`` for N...C), each pair cut from
  the begin and the end of the full output: the canonical pairs. The adapter passes ints where
  every pair is symmetric, else the pairs.
- a string, "either 'VALID' or 'SAME' which is the padding algorithm": ``'VALID'`` is zero pads;
  ``'SAME'`` is resolved by Paddle's kernels (``UpdatePaddingAndDilation`` in
  paddle/phi/kernels/cpu/conv_util.h) like a forward convolution's SAME on the transposed
  convolution's input: ``pad_sum = max((ceil(n/s) - 1)·s + k - n, 0)``, ``(pad_sum // 2, pad_sum
  - pad_sum // 2)``, dilation set to 1. :func:`paddle_same_pads` states it, for the reasons the
  adapter gives; what Paddle does is checked, not assumed.

The ``:padding_algorithm`` column passes the case's own word (``valid`` -> ``'VALID'``, ``same``
and ``same_upper`` -> ``'SAME'``) with the output_padding as written, and ``'VALID'`` for a case
of numeric zero pads; Paddle has no ``same_lower``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

#: a case's padding word -> Paddle's padding string of the same meaning in the format
WORDS = {"valid": "VALID", "same": "SAME", "same_upper": "SAME"}


def explicit_padding(case: Case, channels_last: bool) -> tuple[Any, str]:
    """Paddle's explicit ``padding`` argument for the case's canonical pairs and how it was made:
    per-axis ints where every pair is symmetric, else the per-axis pairs with ``[0, 0]`` for the
    batch and channel axes (their place decided by the data format). An invalid case's pairs go as
    they are (Paddle validates them)."""
    pairs = [[int(b), int(e)] for b, e in case.padding]
    if all(b == e for b, e in pairs):
        return [b for b, _ in pairs], "padding=[p, ...] (one int per spatial axis, cut from both ends)"
    full = ([[0, 0]] + pairs + [[0, 0]]) if channels_last else ([[0, 0], [0, 0]] + pairs)
    where = "[[0, 0], [b, e], ..., [0, 0]] (N...C)" if channels_last else "[[0, 0], [0, 0], [b, e], ...] (NC...)"
    return full, f"padding={where}: per-axis (begin, end) pairs cut from the full output"


def paddle_same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """The (begin, end) pads Paddle's ``'SAME'`` resolves to on one axis (input size ``n``, kernel
    ``k``, stride ``s``; the dilation is set to 1): a forward convolution's SAME on the input."""
    out = (n + s - 1) // s
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def padding_algorithm_for(case: Case) -> tuple[str | None, str]:
    """The padding string the ``:padding_algorithm`` column passes for ``case``, and why (or why
    none): the case's own word where Paddle has one, ``'VALID'`` for numeric zero pads."""
    word = str(case.padding_mode or "").lower()
    if word:
        if word in WORDS:
            return WORDS[word], f"padding={WORDS[word]!r} (the case's word {case.padding_mode!r}), output_padding as written"
        return None, (f"padding {case.padding_mode!r}: Paddle's padding strings are 'SAME' and 'VALID' only "
                      "('same_lower' has no Paddle word); the explicit column passes its pads")
    if all(tuple(p) == (0, 0) for p in case.padding):
        return "VALID", "padding='VALID' (every pad is 0)"
    return None, (f"pads {[list(p) for p in case.padding]} are no padding word: Paddle's strings are 'SAME' and "
                  "'VALID', passed for a case's own word (or zero pads) only; the explicit column passes them")
