"""Facts about the machine and the frameworks as set up here, which decide which kernels run: the
CPU's ISA flags (``/proc/cpuinfo``: ``amx_bf16``, ``avx512_bf16``, ...) and the facts adapters
report after ``configure`` (``Adapter.facts()``: ``tensorflow.onednn_custom_ops``, ...).

A known disagreement's ``when:`` (known_disagreements.yaml) names such facts: the entry holds
only on a machine where all of them are true (``!name``: false). A finding of one CPU kind
(oneDNN's AMX kernels, say) is then expected there and nowhere else: on another machine the same
check must pass, and a strict entry that matched there would call a correct result ``xpass``.
"""

from __future__ import annotations

import re
import weakref
from functools import cache
from pathlib import Path

#: CPU flags a `when:` may name (x86 /proc/cpuinfo spellings; `asimd`, `sve`, `bf16`: aarch64).
#: Also the flags the results' environment records (``cpu_features``).
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
             "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "asimd", "sve", "bf16")
_FACT = re.compile(r"!?[a-z0-9_]+(\.[a-z0-9_]+)?")

# set-up adapters' facts(), asked when a term needs them; weak, so that noting an adapter never keeps
# it (and a Keras adapter's backend children) alive
_sources: dict[int, weakref.WeakMethod] = {}


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
    flag of :data:`ISA_FLAGS` or ``framework.fact``, ``!`` in front for "not")."""
    terms = tuple(str(value).split())
    if not terms:
        return (), "must name at least one fact"
    for t in terms:
        if not _FACT.fullmatch(t):
            return (), f"{t!r} is not a fact name (a CPU flag, or framework.fact; `!` for not)"
        if "." not in t and t.lstrip("!") not in ISA_FLAGS:
            return (), f"{t!r}: unknown CPU flag (one of {', '.join(ISA_FLAGS)}; or framework.fact)"
    return terms, None


def holds(terms: tuple[str, ...]) -> bool:
    """Whether every term is true here: a CPU flag the CPU has, a fact a set-up adapter reports;
    with ``!``, one that is not (an adapter not set up in this process reports
    nothing)."""
    reported: set[str] = set()
    if any("." in t for t in terms):
        live = [f for f in (ref() for ref in list(_sources.values())) if f is not None]
        reported = set().union(*(f() for f in live))
    for t in terms:
        name, want = (t[1:], False) if t.startswith("!") else (t, True)
        if (name in (reported if "." in name else cpu_flags())) != want:
            return False
    return True
