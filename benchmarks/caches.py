"""What "cold" means for the benchmark scripts: the compilation caches a run fills, moved to a
folder of the script's own (JAX's persistent compilation cache, torch inductor's), so that an
empty folder is a cold run and a kept one a warm run."""

from __future__ import annotations

import os
from pathlib import Path


def cache_env(folder: Path) -> dict[str, str]:
    """This process's environment with the run's compilation caches under ``folder``."""
    return {**os.environ, "CONFORMANCE_JAX_CACHE": str(folder / "jax"), "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor")}
