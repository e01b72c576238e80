"""Convention probes: what each native API does matches what its adapter declares."""

from __future__ import annotations

import importlib.util

import pytest

from conformance.probes import DECLARED, discover_conventions

INSTALLED = [n for n in ("torch", "tensorflow", "jax") if importlib.util.find_spec(n)]


@pytest.mark.skipif(not INSTALLED, reason="no framework installed")
def test_discovered_conventions_match_declared():
    rows = discover_conventions()
    assert {r["adapter"] for r in rows} == set(INSTALLED)
    for r in rows:
        assert r["agrees"], r
        assert not r["discovered"].startswith(("ambiguous", "no candidate")), r


def test_every_declared_api_is_probed_when_installed():
    probed = {(r["adapter"], r["api"].split(".", 1)[1]) for r in discover_conventions()}
    for key in DECLARED:
        if key[0] in INSTALLED:
            assert key in probed
