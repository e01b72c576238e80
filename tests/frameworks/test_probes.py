"""Convention probes: what each native API does matches what its adapter declares."""

from __future__ import annotations

import pytest

from convt_conformance.adapters import adapter_names, get_adapter
from convt_conformance.checking.probes import discover_conventions

INSTALLED = [n for n in adapter_names() if get_adapter(n).installed() and get_adapter(n).probes()]


@pytest.mark.skipif(not INSTALLED, reason="no framework with probes installed")
def test_discovered_conventions_match_declared():
    rows = discover_conventions()
    assert {r["adapter"] for r in rows} == set(INSTALLED)
    for r in rows:
        assert r["agrees"], r
        assert not r["discovered"].startswith(("ambiguous", "no candidate")), r


@pytest.mark.parametrize("name", adapter_names())
def test_every_declared_probe_runs_when_installed(name):
    """Each framework's declared probes each give one row, and the probe call really ran (some
    candidate matched); a framework declaring none gets no row."""
    a = get_adapter(name)
    if not a.installed():
        pytest.skip(f"{name} is not installed")
    if a.unavailable_reason():
        pytest.skip(a.unavailable_reason())
    rows = discover_conventions([name])
    declared = [p.api for p in a.probes()]
    assert sorted(r["api"] for r in rows) == sorted(f"{name}.{api}" for api in declared)
    for r in rows:
        assert r["adapter"] == name
        assert r["discovered"] != "no candidate matches", r  # every candidate raised or none matched


def test_a_wrong_declaration_is_a_disagreement(monkeypatch):
    """A probe whose declared transform is not what the API does must not agree."""
    from convt_conformance.adapters.base import ProbeCall
    from convt_conformance.oracle.forward import conv_transpose_scatter

    def identity_call(x, w, layout, stride):
        if layout != "channels-first":
            raise ValueError("NCHW only")
        return conv_transpose_scatter(x, w, stride=stride, padding=((0, 0), (0, 0)), output_padding=(0, 0),
                                      dilation=(1, 1))

    lying = ProbeCall("fake2d", ("spatial flip", "channels-first"), identity_call)
    monkeypatch.setattr("convt_conformance.checking.probes._probe_calls", lambda fw: [("fake", lying)])
    (row,) = discover_conventions()
    assert row["discovered"] == "identity; channels-first"
    assert not row["agrees"]
