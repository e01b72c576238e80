"""Each process's timeline (convt_conformance/run/timeline.py): nothing without the variable;
with it, one line per event in the process's own file."""

from __future__ import annotations

import os

from convt_conformance.run import timeline


def test_nothing_is_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(timeline, "_FOLDER", "")
    timeline.mark("configure")
    assert not timeline.enabled() and not list(tmp_path.iterdir())


def test_each_event_is_a_line_of_this_processs_file(tmp_path, monkeypatch):
    monkeypatch.setattr(timeline, "_FOLDER", str(tmp_path))
    timeline.mark("plan-start")
    timeline.mark("item", "1.500", "torch", "conv_transpose2d", "float32", 3)
    lines = (tmp_path / f"{os.getpid()}.txt").read_text(encoding="utf-8").splitlines()
    assert [ln.split()[1:] for ln in lines] == [["plan-start"],
                                                ["item", "1.500", "torch", "conv_transpose2d", "float32", "3"]]
    assert float(lines[0].split()[0]) > 1.7e9  # a Unix time
