"""Test-only pytest plugin: the first time a check whose id contains ``lose-me`` is run, it
produces no report at all (as a check lost with a crashed xdist worker does) and leaves a mark
(the file named by LOSE_ME_MARK); `conformance run` must then run it again, and this time it runs."""

import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)  # before convt_conformance/run/item_protocol.py's
def pytest_runtest_protocol(item, nextitem):
    mark = Path(os.environ["LOSE_ME_MARK"])
    names = [item.nodeid] + [m.check_id for m in getattr(getattr(item, "group", None), "members", [])]  # a group item's checks
    if any("lose-me" in n and "float32" in n for n in names) and not mark.exists():
        mark.write_text(item.nodeid)
        return True  # handled, and nothing reported
    return None
