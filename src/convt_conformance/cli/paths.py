"""Path checks and output locks of the command line (what ``conformance`` checks before it starts)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

_held_locks: list[IO[str]] = []  # open lock files of this process (released when a command returns)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (hard or symbolic links included; missing ones by path)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def output_problem(flag: str, path: str) -> str | None:
    """Why ``path`` cannot be written as an output file (None when it can, as far as one can tell
    before writing: not a directory, its nearest existing ancestor a writable directory)."""
    p = Path(path)
    if not path:
        return f"{flag}: an empty path"
    if p.is_dir():
        return f"{flag} {path}: is a directory; give a file name"
    anc = p.parent.absolute()
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return f"{flag} {path}: {anc} is not a directory"
    if not os.access(anc, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return f"{flag} {path}: not writable"
    return None


def lock_output(path: str) -> str | None:
    """Hold an exclusive lock on ``<dir>/.<name>.lock`` while this command runs, so that two runs
    never write the same results file (the last writer would win silently). Returns why not."""
    import fcntl

    p = Path(path).absolute()
    p.parent.mkdir(parents=True, exist_ok=True)
    lock_path = p.parent / f".{p.name}.lock"
    fh = open(lock_path, "a+")  # noqa: SIM115 - held until the command returns
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        return (f"{path}: another run is writing this results file ({holder or 'lock ' + str(lock_path)}); "
                f"wait for it or give another --results")
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    _held_locks.append(fh)
    return None


def held_locks() -> int:
    """How many output locks this process holds (for :func:`release_locks`)."""
    return len(_held_locks)


def release_locks(keep: int = 0) -> None:
    """Release the locks taken by :func:`lock_output` in this process, the first ``keep`` aside."""
    while len(_held_locks) > keep:
        with contextlib.suppress(OSError):
            _held_locks.pop().close()
