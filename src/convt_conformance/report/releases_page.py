"""The release matrix page: one row per check whose outcome differs across the releases of one
framework, one column per release, cells coloured by outcome (the report's status colours), the
first and last release of each non-passing outcome, and the changes between consecutive releases
above the table (where a bisection would land)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from convt_conformance.model.status import Status
from convt_conformance.results.files import write_atomic
from convt_conformance.results.release_matrix import ABSENT, ReleaseMatrix, transitions

_COLOURS = {s.value: s.colour for s in Status} | {ABSENT: "#bdbdbd"}


def outcome_colour(outcome: str) -> str:
    """The colour of an outcome: its status's (``fail/value`` -> ``fail``)."""
    return _COLOURS.get(outcome.split("/", 1)[0], "#9e9e9e")


def render_release_matrix(matrix: ReleaseMatrix, runs: list[dict[str, object]] | None = None) -> str:
    """The page's HTML; ``runs``: per release, what the page says of its run (results file, wall
    time, environment mode), in release order."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    tpl = env.get_template("releases.html.j2")
    return tpl.render(m=matrix, runs=runs or [{} for _ in matrix.releases], transitions=transitions(matrix),
                      colour=outcome_colour)


def write_release_matrix(path: str | Path, matrix: ReleaseMatrix, runs: list[dict[str, object]] | None = None) -> None:
    """Render the page and write it to ``path`` atomically (parent folders created)."""
    write_atomic(path, render_release_matrix(matrix, runs))
