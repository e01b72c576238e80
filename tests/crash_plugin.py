"""Test-only pytest plugin: kills the worker process on checks whose id contains CRASH_ME."""

import os


def pytest_runtest_call(item):
    if "crash-me" in item.nodeid and "float32" in item.nodeid:
        os.abort()
