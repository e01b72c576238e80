"""Test-only pytest plugin: the controller (or the single process) appends every report it logs,
``[nodeid, when, outcome]``, as a JSON line to the file named by PHASES_OUT."""

import json
import os

_CONFIG = []


def pytest_configure(config):
    _CONFIG.append(config)


def pytest_runtest_logreport(report):
    if hasattr(_CONFIG[-1], "workerinput"):  # a worker: its reports reach the controller's hook
        return
    with open(os.environ["PHASES_OUT"], "a", encoding="utf-8") as f:
        f.write(json.dumps([report.nodeid, report.when, report.outcome]) + "\n")
