"""What the engine reads about a framework from its folder (convt_conformance/adapters/base.py, the
hooks at the end of ``Adapter``): data files found beside the adapter, the process environment,
and the rejection patterns the checking stage joins with the shared rules."""

from __future__ import annotations

import os
import re
import sys
import types

import pytest

from convt_conformance.adapters.base import Adapter
from convt_conformance.adapters.registry import BUILTIN, adapter_class
from convt_conformance.checking.invalid_rules import (
    RULES_FILE,
    _shared_only,
    classify_rejection,
    framework_modules,
    framework_rejections,
    load_rules,
    read_rejections,
    rule_ids,
)
from convt_conformance.cli.run import framework_environment, set_framework_environment
from convt_conformance.loading.yaml_io import load_yaml
from convt_conformance.run.preflight import _environment


def _module_with(tmp_path, name, files):
    """A module ``name`` whose file lies in ``tmp_path/name/`` beside the data ``files``."""
    folder = tmp_path / name
    folder.mkdir()
    for stem, text in files.items():
        (folder / f"{stem}.yaml").write_text(text, encoding="utf-8")
    module = types.ModuleType(name)
    module.__file__ = str(folder / "adapter.py")
    sys.modules[name] = module
    return module


@pytest.fixture
def modules(tmp_path):
    made = []

    def make(name, files):
        made.append(name)
        return _module_with(tmp_path, name, files)

    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_data_files_are_found_beside_the_adapter_and_shared_by_subclasses_of_the_same_name(modules):
    modules("fw_a", {"profile": "{}", "rejections": "{}"})
    modules("fw_b", {})
    base = type("A", (Adapter,), {"name": "fwa", "__module__": "fw_a"})
    same = type("B", (base,), {"__module__": "fw_b"})  # the same framework, elsewhere
    other = type("C", (base,), {"name": "fwc", "__module__": "fw_b"})  # another framework
    mixed = type("D", (type("Mixin", (), {"__module__": "fw_b"}), base), {"__module__": "fw_b"})
    assert base.profile_file() is not None and base.profile_file().name == "profile.yaml"
    assert base.rejections_file().parent == base.profile_file().parent
    assert same.profile_file() == base.profile_file() == mixed.profile_file()
    assert other.profile_file() is None and other.rejections_file() is None
    assert base.data_file("nothing") is None and Adapter.profile_file() is None


def test_every_built_in_frameworks_data_is_in_its_folder():
    for name in BUILTIN:
        cls = adapter_class(name)
        assert cls.profile_file() is not None and cls.profile_file().parent.name == name, name
        rej = cls.rejections_file()
        assert rej is None or rej.parent.name == name, name
    assert {n for n in BUILTIN if adapter_class(n).rejections_file()} >= {"numpy", "torch", "tensorflow", "jax"}


def test_process_environment_is_each_adapters_and_set_only_where_unset(monkeypatch, tmp_path):
    assert Adapter.process_environment() == {} and adapter_class("numpy").process_environment() == {}
    assert adapter_class("tensorflow").process_environment() == {"TF_CPP_MIN_LOG_LEVEL": "2"}
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    jax_env = {"CONFORMANCE_JAX_CACHE": str(tmp_path / "xdg" / "convt-conformance" / "jax")}
    assert adapter_class("jax").process_environment() == jax_env
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert adapter_class("jax").process_environment() == {
        "CONFORMANCE_JAX_CACHE": str(tmp_path / "home" / ".cache" / "convt-conformance" / "jax")}
    assert framework_environment(["numpy", "no_such_framework"]) == {}
    both = framework_environment(["tensorflow", "jax"])
    assert set(both) == {"TF_CPP_MIN_LOG_LEVEL", "CONFORMANCE_JAX_CACHE"}
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own setting stays
    monkeypatch.setenv("CONFORMANCE_JAX_CACHE", "")  # (restored after the test, set or not)
    monkeypatch.delenv("CONFORMANCE_JAX_CACHE")
    set_framework_environment(["tensorflow", "jax"])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and os.environ["CONFORMANCE_JAX_CACHE"] == both["CONFORMANCE_JAX_CACHE"]
    assert _environment("tensorflow")["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the set-up child's too
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert _environment("tensorflow")["TF_CPP_MIN_LOG_LEVEL"] == "2" and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_rejection_patterns_are_joined_from_the_frameworks_files():
    rules, internal, modules = load_rules()
    frameworks = framework_rejections()
    assert list(frameworks) == [n for n in BUILTIN if n in frameworks]  # the registry's order
    for name, rej in frameworks.items():
        for rid, pats in rej.messages.items():
            assert rules[rid].messages[name] == pats
        assert internal.get(name, ()) == rej.internal and modules.get(name, ()) == rej.modules
    assert "*" in internal and set(rules) == set(rule_ids())
    assert framework_modules("numpy", "numpy") == ("numpy", "convt_conformance.oracle")
    got = classify_rejection("torch", "RuntimeError: negative output_padding is not supported", ["negative-output-padding"])
    assert got["rule_named"] == "negative-output-padding"
    assert classify_rejection("unregistered", "AssertionError: ", [])["kind"] == "internal"  # the shared patterns


def test_the_shared_rules_file_names_no_framework():
    data = load_yaml(RULES_FILE.read_text(encoding="utf-8"))
    assert set(data) == {"rules", "internal"} and set(data["internal"]) == {"*"}
    assert all(set(spec.get("messages") or {}) <= {"*"} for spec in data["rules"].values())
    with pytest.raises(ValueError, match=re.escape("['torch']: a framework's own patterns belong in its adapter's")):
        _shared_only({"*": [], "torch": []}, "internal")


@pytest.mark.parametrize(("text", "message"), [
    ("messages: {no-such-rule: [x]}\n", r"unknown rule id\(s\) \['no-such-rule'\]"),
    ("framework_modules: [x]\n", r"unknown key\(s\) \['framework_modules'\]"),
    ("messages: {bias-shape: 'not a list'}\n", "messages.bias-shape: must be a list of regex strings"),
    ("internal: ['(']\n", "internal: bad regex"),
    ("modules: [1]\n", "modules: must be a list of dotted module names"),
    ("- a list\n", "must be a mapping"),
])
def test_a_wrong_rejections_file_is_refused_with_its_name(tmp_path, text, message):
    path = tmp_path / "rejections.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as exc:
        read_rejections(path, frozenset(rule_ids()))
    assert str(path) in str(exc.value)
