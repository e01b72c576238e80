"""Release environments without the network: a tiny distribution built here in two releases,
installed as overlays over the project's environment from a local folder, reused from the cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from convt_conformance.releases.envs import EnvError, release_env


def _build(tmp: Path, version: str, body: str = "") -> None:
    src = tmp / f"src-{version}"
    (src / "convt_fake_fw").mkdir(parents=True)
    (src / "convt_fake_fw" / "__init__.py").write_text(f"VERSION = {version!r}\n{body}")
    (src / "pyproject.toml").write_text(
        "[build-system]\nrequires = ['setuptools']\nbuild-backend = 'setuptools.build_meta'\n"
        f"[project]\nname = 'convt-fake-fw'\nversion = '{version}'\n")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "wheels"), str(src)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fake")
    _build(tmp, "1.0")
    _build(tmp, "2.0")
    _build(tmp, "3.0", "raise ImportError('needs a newer numpy')\n")
    return tmp / "wheels"


def _run(env_python: Path, code: str) -> str:
    return subprocess.run([str(env_python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_an_overlay_holds_the_release_and_sees_the_project(tmp_path, wheels):
    args = ["--no-index", "--find-links", str(wheels)]
    one = release_env(["convt-fake-fw==1.0"], ["convt_fake_fw"], cache=tmp_path, index_args=args)
    two = release_env(["convt-fake-fw==2.0"], ["convt_fake_fw"], cache=tmp_path, index_args=args)
    assert one.root != two.root and one.mode == two.mode == "overlay" and one.created_s > 0
    assert _run(one.python, "import convt_fake_fw; print(convt_fake_fw.VERSION)") == "1.0"
    assert _run(two.python, "import convt_fake_fw; print(convt_fake_fw.VERSION)") == "2.0"
    # the suite and NumPy come from the project's own environment
    assert _run(one.python, "import convt_conformance, numpy; print('ok')") == "ok"
    again = release_env(["convt-fake-fw==1.0"], ["convt_fake_fw"], cache=tmp_path, index_args=args)
    assert again.root == one.root and again.created_s == 0.0


def test_a_release_that_does_not_import_is_an_error_with_its_words(tmp_path, wheels):
    with pytest.raises(EnvError, match="needs a newer numpy"):
        release_env(["convt-fake-fw==3.0"], ["convt_fake_fw"], cache=tmp_path,
                    index_args=["--no-index", "--find-links", str(wheels)])
