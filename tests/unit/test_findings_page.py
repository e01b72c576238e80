"""docs/findings.md is generated from the known-disagreements file by scripts/findings_page.py:
the committed page must be what the script writes today, and the page must follow the file."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "findings_page.py"


def _script():
    spec = importlib.util.spec_from_file_location("findings_page", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_findings_page_is_up_to_date():
    ok, message = _script().check()
    assert ok, message


def test_a_modified_entry_changes_the_page(tmp_path):
    fp = _script()
    data = fp.load()
    entries = data["disagreements"]
    assert entries, "the known-disagreements file has no entry"
    before = fp.render(data)
    changed = copy.deepcopy(data)
    changed["disagreements"][0]["reason"] = "a reason that no entry has: zyxwvut"
    changed["disagreements"][0]["strict"] = not entries[0].get("strict", True)
    after = fp.render(changed)
    assert after != before
    assert "zyxwvut" in after and "zyxwvut" not in before
    # a page written from the unmodified file is stale against the modified one
    source = tmp_path / "known.yaml"
    page = tmp_path / "findings.md"
    page.write_text(before, encoding="utf-8")
    source.write_text(fp.yaml.safe_dump(changed), encoding="utf-8")
    ok, message = fp.check(page, source)
    assert not ok and "stale" in message


def test_keys_the_script_does_not_know_are_rendered(tmp_path):
    fp = _script()
    data = {"disagreements": [{
        "id": "planted", "where": ["groups > 1"], "adapter": "torch", "reason": "planted", "issue": "",
        "versions": {"torch": ">=2.13,<2.15"}, "outcome": ["fail/value", "error"],
        "configurations": [{"dtype": "bfloat16", "device": "cpu"}],
    }]}
    page = fp.render(data)
    for text in ("groups > 1", ">=2.13,<2.15", "fail/value", "`error`", "configurations", "bfloat16"):
        assert text in page, text
