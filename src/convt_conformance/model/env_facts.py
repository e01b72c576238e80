"""Facts about the machine and the frameworks as set up here, which decide which kernels run: the
CPU's ISA flags (``/proc/cpuinfo``: ``amx_bf16``, ``avx512_bf16``, ...), the flags oneDNN may use
(``onednn.amx_bf16``, ...: the CPU's, less those above an ``ONEDNN_MAX_CPU_ISA`` cap; ``onednn.capped``:
the cap leaves out a flag this CPU has) and the facts adapters report after ``configure``
(``Adapter.facts()``: ``tensorflow.onednn_custom_ops``, ...).

A known disagreement's ``when:`` (known_disagreements.yaml) names such facts: the entry holds
only on a machine where all of them are true (``!name``: false). A finding of one CPU kind
(oneDNN's AMX kernels, say) is then expected there and nowhere else: on another machine the same
check must pass, and a strict entry that matched there would call a correct result ``xpass``.
"""

from __future__ import annotations

import os
import re
import weakref
from functools import cache
from pathlib import Path
from typing import Any

#: CPU flags a `when:` may name (x86 /proc/cpuinfo spellings; `asimd`, `sve`, `bf16`: aarch64).
#: Also the flags the results' environment records (``cpu_features``).
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
             "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "asimd", "sve", "bf16")
_FACT = re.compile(r"!?[a-z0-9_]+(\.[a-z0-9_]+)?")

#: oneDNN's ISA levels (``dnnl_cpu_isa_t``: each a bit mask, a level's mask holding those it
#: includes), by the names ``ONEDNN_MAX_CPU_ISA`` takes; ALL and DEFAULT: no cap
ONEDNN_ISA = {"SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
              "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
              "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF, "AVX10_1_512_AMX": 0xFEF,
              "AVX512_CORE_AMX": 0xFEF, "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF}
#: the lowest oneDNN level that uses each x86 flag (the aarch64 ones are not capped this way)
_FLAG_LEVEL = {"avx2": "AVX2", "fma": "AVX2", "f16c": "AVX2", "avx_vnni": "AVX2_VNNI", "avx512f": "AVX512_CORE",
               "avx512_vnni": "AVX512_CORE_VNNI", "avx512_bf16": "AVX512_CORE_BF16",
               "avx512_fp16": "AVX512_CORE_FP16", "amx_tile": "AVX512_CORE_AMX", "amx_int8": "AVX512_CORE_AMX",
               "amx_bf16": "AVX512_CORE_AMX", "amx_fp16": "AVX512_CORE_AMX_FP16"}

# set-up adapters' facts(), asked when a term needs them; weak, so that noting an adapter never keeps
# it (and a Keras adapter's backend children) alive
_sources: dict[int, weakref.WeakMethod[Any]] = {}


@cache
def cpu_flags() -> frozenset[str]:
    """Every flag of this machine's CPU (the first ``flags``/``Features`` line of /proc/cpuinfo;
    empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def onednn_cap_setting() -> str | None:
    """The oneDNN ISA cap as this process's environment sets it (``ONEDNN_MAX_CPU_ISA``, or its
    older name ``DNNL_MAX_CPU_ISA``; torch's and TF's bundled oneDNN both read it when they start),
    as written, or None: unset."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or None


def onednn_cap() -> str | None:
    """The ISA level oneDNN is capped at (:func:`onednn_cap_setting`), upper-case, or None: unset,
    ``ALL``/``DEFAULT``, or a level this table does not know (a newer one: above every level here)."""
    value = (onednn_cap_setting() or "").strip().upper()
    return value if value in ONEDNN_ISA else None


def onednn_flags() -> frozenset[str]:
    """The CPU's flags that oneDNN may use here: :func:`cpu_flags`, less the x86 flags above
    :func:`onednn_cap` (with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 on an AMX CPU, no ``amx_*``)."""
    cap = onednn_cap()
    if cap is None:
        return cpu_flags()
    allowed = ONEDNN_ISA[cap]
    return frozenset(f for f in cpu_flags()
                     if f not in _FLAG_LEVEL or ONEDNN_ISA[_FLAG_LEVEL[f]] & ~allowed == 0)


def _onednn_facts() -> set[str]:
    have = onednn_flags()
    facts = {f"onednn.{f}" for f in ISA_FLAGS if f in have}
    if any(f in cpu_flags() and f not in have for f in ISA_FLAGS):
        facts.add("onednn.capped")
    return facts


def note_adapter(adapter: object) -> None:
    """An adapter set up (configured) in this process: its ``facts()`` count from now on (asked
    each time a term needs them: Keras' grow as its backend children start)."""
    facts = getattr(adapter, "facts", None)
    if callable(facts) and hasattr(facts, "__self__"):
        ref = _sources.get(id(adapter))
        if ref is None or ref() is None:  # new, or an id reused after its adapter was freed
            for key in [k for k, r in _sources.items() if r() is None]:
                del _sources[key]
            _sources[id(adapter)] = weakref.WeakMethod(facts)


def parse_when(value: str) -> tuple[tuple[str, ...], str | None]:
    """A ``when:`` string as its terms, or the problem with it (space-separated; a term is a CPU
    flag of :data:`ISA_FLAGS`, ``onednn.`` and such a flag or ``onednn.capped``, or
    ``framework.fact``; ``!`` in front for "not")."""
    terms = tuple(str(value).split())
    if not terms:
        return (), "must name at least one fact"
    for t in terms:
        if not _FACT.fullmatch(t):
            return (), f"{t!r} is not a fact name (a CPU flag, or framework.fact; `!` for not)"
        name = t.lstrip("!")
        if "." not in name and name not in ISA_FLAGS:
            return (), f"{t!r}: unknown CPU flag (one of {', '.join(ISA_FLAGS)}; or framework.fact)"
        if name.startswith("onednn.") and name[7:] not in (*ISA_FLAGS, "capped"):
            return (), f"{t!r}: onednn. takes a CPU flag (one of {', '.join(ISA_FLAGS)}) or `capped`"
    return terms, None


def holds(terms: tuple[str, ...]) -> bool:
    """Whether every term is true here: a CPU flag the CPU has, a oneDNN fact of this CPU and
    environment, a fact a set-up adapter reports; with ``!``, one that is not (an adapter not set
    up in this process reports nothing)."""
    reported: set[str] = set()
    if any("." in t for t in terms):
        live = [f for f in (ref() for ref in list(_sources.values())) if f is not None]
        reported = set().union(*(f() for f in live))
        if any(t.lstrip("!").startswith("onednn.") for t in terms):
            reported |= _onednn_facts()
    for t in terms:
        name, want = (t[1:], False) if t.startswith("!") else (t, True)
        if (name in (reported if "." in name else cpu_flags())) != want:
            return False
    return True
