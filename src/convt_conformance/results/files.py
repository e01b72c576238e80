"""How every output file of the suite is written: whole or not at all.

The text goes to a temporary file in the target's own folder, which then replaces the target
with :func:`os.replace` (atomic within a file system), so a write that fails half-way (a full
disk, an interrupt) never leaves a truncated results file or report behind that would read as a
clean run. A new file gets the permissions ``open()`` would give it under the umask; a file
replaced keeps its permission bits. A symbolic link to a regular file is written through (its
target is replaced; the link stays). Which paths may be written at all is the command line's
output policy (:mod:`convt_conformance.cli.paths`), checked before a command starts."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def umask() -> int:
    """The process's umask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (parent folders created) and return
    the path written (``path`` with symbolic links resolved). Raises :class:`OSError` (the target
    untouched, the temporary file removed) when it cannot."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        st: os.stat_result | None = target.stat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        # the command line refuses these before it starts; this guards every other caller
        raise IsADirectoryError(f"{path}: not a regular file; refusing to replace it") \
            if stat.S_ISDIR(st.st_mode) else OSError(f"{path}: not a regular file; refusing to replace it")
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
