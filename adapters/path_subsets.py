"""Which cases an execution-path column runs on: the rule of ``adapters/path_subsets.yaml``.

An execution path is an API name with an ``@path`` suffix (``conv_transpose@compile``): the
same native function reached another way (memory format, compiler, autocast, XLA, eager
dispatch, vmap). Expensive paths run on a stratified subset of the cases; the subset is data
(the YAML file), decided here in one function so that it can move into run profiles.
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from conformance.cases import Case

SUBSETS_FILE = Path(__file__).with_name("path_subsets.yaml")


def split_api(api: str) -> tuple[str, str | None]:
    """``"conv_transpose@compile"`` -> ``("conv_transpose", "compile")``; no suffix -> path None."""
    base, sep, path = api.partition("@")
    return base, (path if sep else None)


@functools.lru_cache(maxsize=1)
def _subsets() -> dict:
    with open(SUBSETS_FILE, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    cols = data.get("columns")
    if not isinstance(cols, dict):
        raise ValueError(f"{SUBSETS_FILE}: columns: expected a mapping framework -> column -> rule")
    for fw, rules in cols.items():
        for api, rule in (rules or {}).items():
            if not isinstance(rule, dict) or not set(rule) <= {"tags", "sample"}:
                raise ValueError(f"{SUBSETS_FILE}: columns.{fw}.{api}: expected keys tags and/or sample")
            sample = rule.get("sample")
            if sample is not None and (not isinstance(sample.get("one_in"), int) or sample["one_in"] < 1
                                       or not isinstance(sample.get("tag"), str)):
                raise ValueError(f"{SUBSETS_FILE}: columns.{fw}.{api}.sample: expected {{tag: str, one_in: int >= 1}}")
    return cols


def subset_rule(framework: str, api: str) -> dict | None:
    """The declared rule of one column (None: the column runs on every case)."""
    return (_subsets().get(framework) or {}).get(api)


def path_applies(framework: str, case: Case, api: str) -> bool:
    """Whether ``framework``'s column ``api`` runs on ``case`` (True for every base API)."""
    if split_api(api)[1] is None:
        return True
    rule = subset_rule(framework, api)
    if rule is None:
        return True
    if set(rule.get("tags") or ()) & set(case.tags):
        return True
    sample = rule.get("sample")
    return bool(sample and sample["tag"] in case.tags
                and zlib.crc32(case.id.encode()) % sample["one_in"] == 0)
