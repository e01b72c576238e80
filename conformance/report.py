"""HTML report rendering (placeholder until the report module lands)."""

from __future__ import annotations


def render_report(payload: dict, baseline: dict | None = None) -> str:
    raise NotImplementedError
