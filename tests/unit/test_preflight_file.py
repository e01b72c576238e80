"""The preflight's file: written by `conformance run` while pytest starts, waited for where needed."""

from __future__ import annotations

import json
import threading
import time

from convt_conformance.run.plan import load_run_profile
from convt_conformance.run.state import RunState


def _state(path) -> RunState:
    return RunState(frameworks=["numpy", "torch"], precision="strict", known=[], known_problems=[],
                    profile=load_run_profile("default"), preflight_path=str(path))


def test_waits_for_the_file_and_leaves_out_what_crashed(tmp_path):
    path = tmp_path / "preflight.json"
    body = {"unavailable": {"torch": "died with signal 11"},
            "frameworks": {"numpy": {"version": "2", "devices": ["cpu"], "probes": []}}}

    def write_late():
        time.sleep(0.3)
        path.write_text(json.dumps(body))

    threading.Thread(target=write_late).start()
    st = _state(path)
    st.load_preflight(wait_s=30)
    assert st.frameworks == ["numpy"] and st.unavailable == {"torch": "died with signal 11"}
    # collection then takes the devices from it without importing (setup=False)
    st.adapter("numpy", setup=False)
    assert st.framework_devices == {"numpy": ["cpu"]} and "numpy" not in st.configured
    st.adapter("numpy")  # its first check: set up now
    assert "numpy" in st.configured


def test_no_file_within_the_bound_runs_without(tmp_path):
    st = _state(tmp_path / "never.json")
    t0 = time.monotonic()
    st.load_preflight(wait_s=0.2)
    assert time.monotonic() - t0 < 5 and st.frameworks == ["numpy", "torch"] and st.preflight == {}
