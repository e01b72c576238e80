"""The releases of a distribution on the package index that install here: final releases (no
pre-, post- or dev-releases unless asked for by version) with a wheel this interpreter and
platform take (its tags, and its ``requires_python`` admitting this interpreter), read from the index's JSON API (``https://pypi.org/pypi/<name>/json``, or
``CONFORMANCE_INDEX_URL`` for a mirror of the same API)."""

from __future__ import annotations

import json
import os
import platform
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

INDEX_URL = "https://pypi.org/pypi"


class ReleaseIndexError(RuntimeError):
    """The package index could not be read, or holds nothing that installs here."""


def index_url() -> str:
    """The JSON API's base URL: ``CONFORMANCE_INDEX_URL`` when set, else PyPI's."""
    return os.environ.get("CONFORMANCE_INDEX_URL", INDEX_URL).rstrip("/")


def fetch_release_files(distribution: str, timeout: float = 30.0) -> dict[str, list[dict[str, Any]]]:
    """``{version: [file, ...]}`` of ``distribution`` from the index's JSON API (each file a mapping
    with at least ``filename`` and ``yanked``)."""
    url = f"{index_url()}/{distribution}/json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (a fixed https URL or the user's mirror)
            data = json.load(resp)
    except (OSError, ValueError) as exc:
        raise ReleaseIndexError(f"{url}: {exc}") from None
    releases = data.get("releases") if isinstance(data, dict) else None
    if not isinstance(releases, dict):
        raise ReleaseIndexError(f"{url}: no `releases` mapping in the answer")
    return {str(k): list(v) for k, v in releases.items() if isinstance(v, list)}


def admits_this_python(requires_python: object) -> bool:
    """Whether a file's ``requires_python`` (a PEP 440 specifier set; empty or absent: any) admits
    this interpreter. An unreadable specifier admits nothing: the installer would refuse it too."""
    if not requires_python:
        return True
    try:
        return Version(platform.python_version()) in SpecifierSet(str(requires_python))
    except InvalidSpecifier:
        return False


def installs_here(files: Iterable[Mapping[str, Any]]) -> bool:
    """Whether one of a release's files is a wheel, not yanked, that this interpreter takes: its
    tags match this interpreter and platform and its ``requires_python`` admits this Python."""
    supported = set(sys_tags())
    for f in files:
        name = str(f.get("filename", ""))
        if f.get("yanked") or not name.endswith(".whl") or not admits_this_python(f.get("requires_python")):
            continue
        try:
            _, _, _, tags = parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue
        if tags & supported:
            return True
    return False


def installable_versions(release_files: Mapping[str, Sequence[Mapping[str, Any]]],
                         include_prereleases: bool = False) -> list[Version]:
    """The versions (ascending) with a wheel that installs here; final releases only unless
    ``include_prereleases``."""
    out = []
    for text, files in release_files.items():
        try:
            v = Version(text)
        except InvalidVersion:
            continue
        if (v.is_prerelease or v.is_devrelease or v.is_postrelease) and not include_prereleases:
            continue
        if installs_here(files):
            out.append(v)
    return sorted(out)


def choose(versions: Sequence[Version], *, last: int | None = None, spec: str | None = None,
           listed: Sequence[str] = ()) -> list[Version]:
    """The releases a command asks for: ``listed`` (each must exist), else those matching the PEP 440
    ``spec``, keeping the ``last`` N of them when given (ascending)."""
    if listed:
        wanted = [Version(v) for v in listed]
        missing = [str(v) for v in wanted if v not in versions]
        if missing:
            raise ReleaseIndexError(f"not on the index as installable releases: {', '.join(missing)}")
        return sorted(set(wanted))
    chosen = [v for v in versions if v in SpecifierSet(spec or "")] if spec else list(versions)
    if last is not None:
        chosen = chosen[-last:] if last > 0 else []
    return chosen


def between(versions: Sequence[Version], good: str, bad: str) -> list[Version]:
    """The releases from ``good`` to ``bad`` inclusive (either order), ascending."""
    lo, hi = sorted((Version(good), Version(bad)))
    return [v for v in versions if lo <= v <= hi]
