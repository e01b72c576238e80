"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
#: a one-case file of three integers: the smallest valid case, for command-line tests
TINY_CASE = """\
cases:
  - id: tiny-one
    input: {values: [[[1, 2]]]}
    weight: {values: [[[1, 1]]]}
    expected: {shape: [1, 1, 3], values: [[[1, 3, 2]]]}
"""


def document_slots(node: object) -> list[tuple[object, object]]:
    """Every (container, key) slot of a parsed JSON/YAML document, in a stable order (for the
    fuzz tests' mutations)."""
    out: list[tuple[object, object]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            out.extend(document_slots(v))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            out.extend(document_slots(v))
    return out


def mutate_slot(draw: Any, parent: Any, key: Any, op: str, values: Any, keys: Any) -> None:
    """One structural mutation of a document slot for the fuzz tests: ``replace`` its value (drawn
    from ``values``), ``delete`` it, ``rename`` a mapping key (from ``keys``), ``wrap`` the value in
    a list or ``nest`` it in a one-key mapping; any other ``op`` leaves the slot as it is."""
    if op == "replace":
        parent[key] = draw(values)
    elif op == "delete":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        parent[draw(keys)] = parent.pop(key)
    elif op == "wrap":
        parent[key] = [parent[key]]
    elif op == "nest" and isinstance(parent, dict):
        parent[key] = {draw(keys): parent[key]}

# CI: fixed seed, few examples; `HYPOTHESIS_PROFILE=thorough` for long runs.
settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def integer_case(source: str, dtypes: list[str], *, n: int = 1, ci: int = 2, co: int = 3,
                 spatial: list[int] | None = None, kernel: list[int] | None = None, dist: str = "integers",
                 **keys: Any) -> Any:
    """A case from keyword keys (the case format's own, plus ``n``, ``ci``, ``co``, ``spatial``,
    ``kernel``), its input (distribution ``dist``) and weight integers in [-3, 3) with fixed seeds,
    so exact in every dtype; ``source`` names the file in validation messages. Canonical layout:
    input ``(n, ci, *spatial)``, weight ``(ci, co / groups, *kernel)``."""
    from convt_conformance.loading.case_checks import case_from_raw

    spatial, kernel = spatial or [3, 4], kernel or [2, 3]
    raw = {"id": keys.pop("id"), "dtypes": list(dtypes),
           "input": {"random": {"shape": [n, ci, *spatial], "distribution": dist, "low": -3, "high": 3,
                                "seed": 1}},
           "weight": {"random": {"shape": [ci, co // keys.get("groups", 1), *kernel], "distribution": "integers",
                                 "low": -3, "high": 3, "seed": 2}},
           "expected": {"shape": keys.pop("expected_shape")}, **keys}
    problems: list = []
    case = case_from_raw(raw, source, "cases[0]", problems)
    assert case is not None and not problems, problems
    return case


def framework_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_adapter():
    """``shared_adapter(name)``: one configured adapter per framework for the whole test run (Keras'
    backend children start once, not once per module), closed at the end. A framework that is not
    installed skips the test asking for it, with the reason."""
    from convt_conformance.adapters import get_adapter

    made: dict = {}

    def get(name: str):
        if name not in made:
            a = get_adapter(name)
            why = None if a.installed() else f"{name} is not installed"
            why = why or a.unavailable_reason()
            if why:
                pytest.skip(why)
            a.configure("strict")
            made[name] = a
        return made[name]

    yield get
    for a in made.values():
        close = getattr(a, "close", None)
        if close:
            close()


@pytest.fixture(scope="session")
def keras_adapter(shared_adapter):
    """The test run's configured Keras adapter (its backend children are reused by every module)."""
    return shared_adapter("keras")


TIERS = ("unit", "frameworks", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (the folder it lives in): ``-m "not e2e"`` is the fast
    loop, ``-m unit`` the tier that imports no framework."""
    for item in items:
        tier = next((t for t in TIERS if f"{os.sep}tests{os.sep}{t}{os.sep}" in str(item.path)), None)
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
