"""Execution-path API names: an execution path is an API name with an ``@path`` suffix
(``conv_transpose@compile``): the same native function reached another way (memory format,
compiler, autocast, XLA, eager dispatch, vmap).

Which cases a path column runs on is a run profile's choice (``convt_conformance/loading/profiles.yaml``:
the ``within`` subsets of ``default`` and ``quick``; ``full`` runs every path on every case).
"""

from __future__ import annotations


def split_api(api: str) -> tuple[str, str | None]:
    """``"conv_transpose@compile"`` -> ``("conv_transpose", "compile")``; no suffix -> path None."""
    base, sep, path = api.partition("@")
    return base, (path if sep else None)
