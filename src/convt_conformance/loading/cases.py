"""Loading and validating case files (docs/case-format.md), and finding them on disk.

Every problem is collected as a :class:`CaseProblem` (file, case id or index, key path,
message); loading never stops at the first one and never raises: a failure nobody foresaw
becomes a located problem "internal error while loading: ..." of that file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from convt_conformance.loading.case_checks import case_from_raw, schema_problems
from convt_conformance.loading.invalid_grid import expand_invalid_grid
from convt_conformance.loading.schema import ID_PATTERN
from convt_conformance.loading.sweep import expand_sweep
from convt_conformance.loading.yaml_io import load_yaml_file
from convt_conformance.model.case import Case, CaseProblem, LoadResult, TensorSpec
from convt_conformance.model.dtypes import DTYPE_NAMES
from convt_conformance.model.limits import LimitSettingError

CASE_SUFFIXES = (".yaml", ".yml")
ID_RE = re.compile(ID_PATTERN)


def _invalid_grid_entries(data: dict[str, Any], file: str, problems: list[CaseProblem]) -> list[tuple[str, Any]]:
    """Raw cases of the file's ``invalid_grids:`` entries (none when the key has schema problems)."""
    if any(p.key.startswith("invalid_grids") for p in problems):
        return []
    out: list[tuple[str, Any]] = []
    for gi, entry in enumerate(data.get("invalid_grids") or []):
        generated, grid_probs = expand_invalid_grid(entry, file, f"invalid_grids[{gi}]")
        problems.extend(grid_probs)
        out.extend((f"invalid_grids[{gi}]<{c['id']}>", c) for c in generated)
    return out


def case_file_display(path: Path, root: Path) -> str:
    """How a case file is named in records: relative to the rootdir when under it (the pytest
    plugin's collector and the crash records' loader name it alike)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def load_file(path: str | os.PathLike[str], display: str | None = None) -> LoadResult:
    """Load one case file: schema, defaults merge, sweep expansion, semantic checks.

    Never raises: every failure, foreseen or not, is a located problem of this file."""
    file = display or str(path)
    why = case_file_name_problem(Path(path))
    if why:
        return LoadResult([], [CaseProblem(file, "", "", why)], [file])
    try:
        return _load_file(path, file)
    except LimitSettingError as exc:
        return LoadResult([], [CaseProblem(file, "", "", str(exc))], [file])
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must not lose the file silently
        return LoadResult([], [CaseProblem(file, "", "", f"internal error while loading: "
                                           f"{type(exc).__name__}: {str(exc)[:300]}")], [file])


def _semantic_problems(merged: dict[str, Any], file: str, label: str, schema: list[CaseProblem]) -> list[CaseProblem]:
    """The semantic problems of a case that already failed its schema (so a file shows every
    problem of a case at once), except those the schema problems already say; the case itself is
    never kept. A case too malformed to read further gives none beyond its schema's."""
    found: list[CaseProblem] = []
    try:
        # the keys the schema requires stand in empty, so the rest of the case is still read
        case_from_raw({"id": label, "expected": {}, **merged}, file, label, found)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError):
        pass
    return [p for p in found if p not in schema]


def _load_file(path: str | os.PathLike[str], file: str) -> LoadResult:
    problems: list[CaseProblem] = []
    data, why = load_yaml_file(path)
    if why:
        return LoadResult([], [CaseProblem(file, "", "", why)], [file])
    if not isinstance(data, dict):
        return LoadResult([], [CaseProblem(file, "", "", "the top level must be a mapping with `cases:`")], [file])
    file_probs = schema_problems(data, "FILE_SCHEMA", file, "", "")
    # Per-case errors are reported per case below; keep only file-level schema errors here.
    for p in file_probs:
        if p.key.startswith("cases["):
            continue
        if p.key.startswith("sweeps["):
            i = int(p.key[len("sweeps["):p.key.index("]")])
            sid = data["sweeps"][i].get("id") if isinstance(data["sweeps"][i], dict) else None
            p = CaseProblem(p.file, sid if isinstance(sid, str) else p.key.split(".")[0], p.key, p.message)
        problems.append(p)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or any(p.key.startswith("defaults") for p in problems):
        return LoadResult([], problems, [file])
    raw_cases = data.get("cases") or []
    if not isinstance(raw_cases, list):
        return LoadResult([], problems, [file])
    sweeps = data.get("sweeps") or []
    bad_sweeps = {p.key.split("]")[0] + "]" for p in problems if p.key.startswith("sweeps")}
    if "sweeps" in {p.key for p in problems} or not isinstance(sweeps, list):
        sweeps = []
    entries: list[tuple[str, Any]] = [(f"cases[{i}]", c) for i, c in enumerate(raw_cases)]
    for si, sw in enumerate(sweeps):
        if f"sweeps[{si}]" in bad_sweeps:  # its schema problems are reported above
            continue
        generated, sweep_probs = expand_sweep(sw, file, f"sweeps[{si}]")
        problems.extend(sweep_probs)
        entries.extend((f"sweeps[{si}]<{c['id']}>", c) for c in generated)
    entries.extend(_invalid_grid_entries(data, file, problems))  # convt_conformance/loading/invalid_grid.py
    cases: list[Case] = []
    first_at: dict[str, str] = {}
    schema_checked: set[str | None] = set()
    for label, raw in entries:
        if not isinstance(raw, dict):
            problems.append(CaseProblem(file, label, label, "a case must be a mapping"))
            continue
        merged = {**defaults, **raw}
        given_id = merged.get("id")
        cid: str = given_id if isinstance(given_id, str) else label
        cid = cid if cid.isprintable() and len(cid) <= 200 else ascii(cid)[:200]
        sweep = label.split("<")[0] if label.startswith(("sweeps[", "invalid_grids[")) else None
        if sweep is None or sweep not in schema_checked:
            # A sweep's cases share one key set and value types (built from its schema-checked
            # values): the first one of each sweep is checked against the case schema for all.
            sp = schema_problems(merged, "CASE_SCHEMA", file, cid, label)
            schema_checked.add(sweep)
        elif not ID_RE.fullmatch(cid):
            sp = [CaseProblem(file, cid, f"{label}.id", f"generated id {cid!r} does not match {ID_PATTERN!r}")]
        else:
            sp = []
        if sp:
            problems.extend(sp)
            problems.extend(_semantic_problems(merged, file, label, sp))
            continue
        if cid in first_at:
            problems.append(CaseProblem(file, cid, f"{label}.id",
                                        f"duplicate case id in this file, first defined at {first_at[cid]}"))
            continue
        first_at[cid] = label
        case = case_from_raw(merged, file, label, problems)
        if case is not None:
            cases.append(case)
    if not entries and not problems:
        problems.append(CaseProblem(file, "", "cases", "the file defines no case (empty `cases:` and no `sweeps:` or `invalid_grids:`)"))
    return LoadResult(cases, problems, [file])


# The directories pytest does not recurse into by default (its `norecursedirs` ini default).
PYTEST_NORECURSE = ("*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}")


#: how the names of known-disagreements files begin: a directory walk leaves them out
KNOWN_FILE_PREFIX = "known_disagreements"


def case_file_name_problem(path: Path) -> str | None:
    """Why a file is not a case file by its name (None: it is one): it must end in ``.yaml`` or
    ``.yml`` and not be a known-disagreements file. A file given explicitly is loaded whatever
    its name, and this is then its problem rather than a silent skip."""
    if path.suffix not in CASE_SUFFIXES:
        return "not a case file: the name must end in .yaml or .yml"
    if path.name.startswith(KNOWN_FILE_PREFIX):
        return (f"this is a known-disagreements file (its name starts with {KNOWN_FILE_PREFIX}), "
                "not a case file; pass it with --known")
    return None


def is_case_file_name(path: Path) -> bool:
    """Whether a directory walk picks ``path`` up as a case file (the pytest plugin's rule)."""
    return case_file_name_problem(path) is None


def write_case_list(path: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]]) -> None:
    """Write the case files of a run as a JSON list of absolute paths: ``conformance run`` hands
    pytest this list (read back by :func:`read_case_list`) rather than the files themselves, which
    pytest would parse as node ids or options (``a::b.yaml``, ``x[1].yaml``, ``-dash.yaml``)."""
    Path(path).write_text(json.dumps([os.path.abspath(f) for f in files]), encoding="utf-8")


def read_case_list(path: str | os.PathLike[str]) -> list[Path]:
    """The case files :func:`write_case_list` wrote to ``path``, in order."""
    return [Path(f) for f in json.loads(Path(path).read_text(encoding="utf-8"))]


def _skip_dir(path: Path) -> bool:
    if path.name == "__pycache__" or any(fnmatch.fnmatch(path.name, pat) for pat in PYTEST_NORECURSE):
        return True
    try:
        return (path / "pyvenv.cfg").is_file() or (path / "conda-meta" / "history").is_file()
    except OSError:
        return True


def discover(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Case files under the given files/directories, the one walker of ``validate`` and ``run``.

    Rules: a path given explicitly is kept as given (even a missing one, which the loader reports);
    directories are walked in name order, following symlinked directories like pytest, skipping
    the directories pytest skips by default (hidden ones, ``build``, ``venv``..., virtualenvs,
    ``__pycache__``) and files named ``known_disagreements*``; a directory or file reached twice
    (two symlinks, a symlink loop, overlapping arguments) is taken once, at its first path."""
    found: list[Path] = []
    seen_files: set[str] = set()
    seen_dirs: set[str] = set()

    def add(f: Path) -> None:
        key = os.path.realpath(f)
        if key not in seen_files:
            seen_files.add(key)
            found.append(f)

    def walk(d: Path) -> None:
        real = os.path.realpath(d)
        if real in seen_dirs:
            return
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            p = Path(d) / e.name
            try:
                is_dir, is_file = e.is_dir(), e.is_file()
            except OSError:
                continue
            if is_dir:
                if not _skip_dir(p):
                    walk(p)
            elif is_file and is_case_file_name(p):
                add(p)

    for p in map(Path, paths):
        if p.is_dir():
            walk(p)
        else:
            add(p)
    return found


def load_cases(paths: Sequence[str | os.PathLike[str]]) -> LoadResult:
    """Load every case file under ``paths``; ids must be unique across all files."""
    result = LoadResult([], [], [])
    first_seen: dict[str, str] = {}
    for f in discover(paths):
        if not f.exists():
            result.problems.append(CaseProblem(str(f), "", "", "no such file or directory"))
            continue
        r = load_file(f)
        result.files.extend(r.files)
        result.problems.extend(r.problems)
        for c in r.cases:
            if c.id in first_seen:
                result.problems.append(CaseProblem(
                    c.file, c.id, "id", f"duplicate case id, first defined in {first_seen[c.id]}"))
                continue
            first_seen[c.id] = c.file
            result.cases.append(c)
    return result


def select(cases: Iterable[Case], tags: Sequence[str] = (), ids: Sequence[str] = ()) -> list[Case]:
    """Cases having any of ``tags`` (all when empty) and matching any id glob in ``ids``."""
    out = []
    for c in cases:
        if tags and not set(tags) & set(c.tags):
            continue
        if ids and not any(fnmatch.fnmatchcase(c.id, pat) for pat in ids):
            continue
        out.append(c)
    return out


__all__ = ["Case", "CaseProblem", "LoadResult", "TensorSpec", "discover", "load_cases", "load_file", "select",
           "DTYPE_NAMES"]
