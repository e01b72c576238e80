"""One cached environment per release: an overlay of that release over the project's own
environment.

An overlay is a virtual environment of the same interpreter whose own site-packages holds only
the release's distributions, installed without their dependencies, and a ``.pth`` file that
adds the project's environment behind it (its site-packages processed as a site directory, so
its own ``.pth`` files, an editable install's included, still apply). Everything else (the
suite, NumPy, the other frameworks) is the project's own. When the release does not import over
the project's environment (a dependency too new or too old for it), the overlay is made again
with the release's dependencies installed into it too, where they shadow the project's.

Environments live in ``CONFORMANCE_RELEASES_CACHE`` (default ``$XDG_CACHE_HOME/convt-conformance/
releases``, else ``~/.cache/...``), one folder per (interpreter, project environment, release),
marked complete by a ``.ready`` file: a second invocation reuses them. Installs use ``uv`` when it
is on the PATH or importable (fast, with its own cache), else ``pip``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReleaseEnv:
    """A ready environment: its folder, its Python, what was installed and how."""

    root: Path
    python: Path
    requirements: tuple[str, ...]
    mode: str  # "overlay" (no dependencies installed) or "overlay+deps"
    created_s: float  # seconds spent creating it; 0.0 when it came from the cache


class EnvError(RuntimeError):
    """A release's environment could not be made (the installer's own words in the message)."""


def cache_root() -> Path:
    """Where release environments are kept (see the module's docstring)."""
    env = os.environ.get("CONFORMANCE_RELEASES_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convt-conformance" / "releases"


def base_site_dirs() -> list[str]:
    """The project's environment's site-packages folders (purelib, platlib), in order."""
    out: list[str] = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in out:
            out.append(p)
    return out


def env_key(requirements: Sequence[str]) -> str:
    """The cache folder name: the requirements, made readable, plus a digest of the interpreter and
    the project's environment (an overlay is tied to both)."""
    tag = f"{sys.implementation.cache_tag}-{sys.prefix}-{'|'.join(base_site_dirs())}"
    digest = hashlib.sha1(f"{tag}|{'|'.join(requirements)}".encode()).hexdigest()[:10]
    readable = "+".join(r.replace("==", "-") for r in requirements)
    safe = "".join(ch if ch.isalnum() or ch in "-._+" else "_" for ch in readable)[:120]
    return f"{safe}.{digest}"


def _site_packages(root: Path) -> Path:
    return root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _uv() -> list[str] | None:
    exe = shutil.which("uv")
    if exe:
        return [exe]
    with contextlib.suppress(Exception):
        import uv  # type: ignore[import-not-found]

        return [uv.find_uv_bin()]
    return None


def _install(root: Path, requirements: Sequence[str], with_deps: bool, index_args: Sequence[str]) -> None:
    site = _site_packages(root)
    uv = _uv()
    deps = [] if with_deps else ["--no-deps"]
    if uv is not None:
        cmd = [*uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python"), *deps, *index_args,
               *requirements]
    else:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
               "--target", str(site), "--upgrade", *deps, *index_args, *requirements]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-12:]
        raise EnvError(f"installing {' '.join(requirements)}: " + " | ".join(tail))


def _imports(python: Path, modules: Sequence[str], versions: dict[str, str]) -> str | None:
    """None when ``modules`` import in the environment and its distributions have ``versions``,
    else why not."""
    code = ("import importlib, importlib.metadata as m, sys\n"
            f"for mod in {list(modules)!r}:\n    importlib.import_module(mod)\n"
            f"for d, v in {versions!r}.items():\n"
            "    got = m.version(d)\n"
            "    if got != v: sys.exit(f'{d} is {got}, not {v}')\n")
    p = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if p.returncode == 0:
        return None
    return ((p.stderr or p.stdout).strip().splitlines() or ["exit " + str(p.returncode)])[-1]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _make_overlay(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True)
    site = _site_packages(root)
    site.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in base_site_dirs())
    (site / "zz_convt_conformance_base.pth").write_text(lines, encoding="utf-8")
    return root / "bin" / "python"


def release_env(requirements: Sequence[str], modules: Sequence[str], *, cache: Path | None = None,
                index_args: Sequence[str] = ()) -> ReleaseEnv:
    """The environment where ``requirements`` (``dist==version`` pins) are installed over the
    project's own and ``modules`` import: from the cache when it is there, else made (an overlay
    without dependencies first, then with them). ``index_args`` go to the installer (e.g.
    ``--no-index --find-links DIR``)."""
    pins = dict(r.split("==", 1) for r in requirements if "==" in r)
    root = (cache or cache_root()) / env_key(requirements)
    with _locked(root.with_name(root.name + ".lock")):
        python = root / "bin" / "python"
        ready = root / ".ready"
        if ready.is_file() and python.exists():
            return ReleaseEnv(root, python, tuple(requirements), ready.read_text().strip() or "overlay", 0.0)
        start = time.perf_counter()
        why = ""
        for with_deps in (False, True):
            python = _make_overlay(root)
            _install(root, requirements, with_deps, index_args)
            problem = _imports(python, modules, pins)
            if problem is None:
                mode = "overlay+deps" if with_deps else "overlay"
                ready.write_text(mode + "\n", encoding="utf-8")
                return ReleaseEnv(root, python, tuple(requirements), mode, time.perf_counter() - start)
            why = problem
        raise EnvError(f"{' '.join(requirements)} does not import over the project's environment, with or "
                       f"without its own dependencies: {why}")
