"""The command line's output policy and its locks: what ``conformance`` checks about every file a
command will write, before anything runs.

Every output (``run --results`` / ``--report``, ``report -o``, ``compare --report``,
``--junit-xml``, ``--markdown-summary``, ``repro -o``, ``merge``'s output, the files ``releases``
and ``bisect`` write in ``--out``) must be:

- a regular file or a path that does not exist yet: never a directory, a device, a FIFO, a
  socket, nor a symbolic link to one (a symbolic link to a regular file is written through);
- in a folder that exists or can be created, and writable (an existing file writable too);
- none of the command's inputs (results files read, case files, the known-disagreements file)
  nor another of its outputs (real paths compared, hard links included);
- not the results file of a run in progress (its lock, :func:`lock_output`, is held).

A command refuses such a path as a usage error (exit 2) naming the option, the path and the reason,
and writes its outputs with :func:`convt_conformance.results.files.write_atomic` (a temporary
file in the same folder, then ``os.replace``)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import IO

#: a command line option (or positional name) and the path given to it
Named = tuple[str, str]

_held_locks: list[IO[str]] = []  # open lock files of this process (released when a command returns)

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (hard or symbolic links included; missing ones by real path)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _not_regular(path: str) -> str | None:
    """What ``path`` is when it exists and is not a regular file (after symbolic links)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # absent (or a dangling link: its target is created)
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is a symbolic link to {kind}" if os.path.islink(path) else f"is {kind}"


def output_problem(flag: str, path: str) -> str | None:
    """Why ``path`` cannot be written as the output file of option ``flag`` (None when it can, as
    far as one can tell before writing): see the module's policy (inputs and locks aside)."""
    if not path:
        return f"{flag}: an empty path"
    kind = _not_regular(path)
    if kind:
        hint = "; give a file name" if kind.endswith("a directory") else "; give a regular file"
        return f"{flag} {path}: {kind}{hint}"
    real = Path(os.path.realpath(path))
    anc = real.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return f"{flag} {path}: {anc} is not a directory"
    if not os.access(anc, os.W_OK | os.X_OK) or (real.exists() and not os.access(real, os.W_OK)):
        return f"{flag} {path}: not writable"
    return None


def output_problems(outputs: Sequence[Named], inputs: Sequence[Named] = ()) -> list[str]:
    """Every problem of a command's ``outputs`` under the policy: each one's own
    (:func:`output_problem`, :func:`lock_holder`), an output that is also an input, and two
    outputs naming one file."""
    errors: list[str] = []
    for i, (flag, path) in enumerate(outputs):
        why = output_problem(flag, path)
        if why:
            errors.append(why)
            continue
        holder = lock_holder(path)
        if holder:
            errors.append(f"{flag} {path}: a run in progress is writing this results file ({holder}); "
                          "wait for it to finish or write elsewhere")
        for iflag, ipath in inputs:
            if same_file(path, ipath):
                errors.append(f"{flag} {path}: is also the input {iflag} {ipath}; it would be overwritten")
        for oflag, opath in outputs[:i]:
            if same_file(path, opath):
                errors.append(f"{flag} {path}: is also the output {oflag}; one would overwrite the other")
    return errors


def folder_problem(flag: str, path: str) -> str | None:
    """Why ``path`` cannot be an output folder (``releases --out``): it must be a directory, or
    not exist yet under a writable ancestor."""
    real = Path(os.path.realpath(path))
    if real.exists():
        if not real.is_dir():
            return f"{flag} {path}: {_not_regular(path) or 'is a file'}; give a directory"
        return None if os.access(real, os.W_OK | os.X_OK) else f"{flag} {path}: not writable"
    return output_problem(flag, path)


def _lock_path(path: str) -> Path:
    p = Path(os.path.realpath(path))
    return p.parent / f".{p.name}.lock"


def lock_holder(path: str) -> str | None:
    """Who holds the run lock of results file ``path`` (``pid N``, or the lock file's path) while a
    run writes it; None when nobody does. Creates nothing."""
    import fcntl

    lock_path = _lock_path(path)
    try:
        fh = open(lock_path)  # noqa: SIM115 - closed below
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return fh.read().strip() or f"lock {lock_path}"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def lock_output(path: str) -> str | None:
    """Hold an exclusive lock on ``<dir>/.<name>.lock`` while this command runs, so that two
    commands never write the same results file (the last writer would win silently). Returns why
    not."""
    import fcntl

    lock_path = _lock_path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock_path, "a+")  # noqa: SIM115 - held until the command returns
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        return (f"{path}: another run is writing this results file ({holder or 'lock ' + str(lock_path)}); "
                f"wait for it or write elsewhere")
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
