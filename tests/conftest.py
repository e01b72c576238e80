"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# CI: fixed seed, few examples; `HYPOTHESIS_PROFILE=thorough` for long runs.
settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def framework_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def keras_adapter():
    """One configured Keras adapter per test module (its backend children are reused), closed after."""
    from convt_conformance.adapters.keras.adapter import KerasAdapter

    a = KerasAdapter()
    a.configure("strict")
    yield a
    a.close()


TIERS = ("unit", "frameworks", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (the folder it lives in): ``-m "not e2e"`` is the fast
    loop, ``-m unit`` the tier that imports no framework."""
    for item in items:
        tier = next((t for t in TIERS if f"{os.sep}tests{os.sep}{t}{os.sep}" in str(item.path)), None)
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
