"""Safe YAML loading: no Python object tags, duplicate mapping keys refused (PyYAML silently keeps
the last), standard merge keys (``<<: *anchor`` or ``<<: [*a, *b]``) supported, and every file
read through the size limits of :mod:`convt_conformance.model.limits`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from convt_conformance.model.limits import LimitSettingError, expanded_nodes, limit, over_limit

_MERGE_TAG = "tag:yaml.org,2002:merge"


# libyaml's C parser when PyYAML was built with it (5-10x faster); the constructor is Python either way.
if TYPE_CHECKING:
    from yaml import SafeLoader as _BaseLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictSafeLoader(_BaseLoader):
    pass


def _merged_sources(loader: _StrictSafeLoader, node: yaml.Node) -> list[dict[Any, Any]]:
    """The mappings named by a merge key's value, in YAML's precedence order (first wins)."""
    subnodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for sub in subnodes:
        if not isinstance(sub, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"a merge key `<<` takes a mapping or a list of mappings, found {getattr(sub, 'id', type(sub).__name__)}", sub.start_mark)
        out.append(loader.construct_object(sub, deep=True))
    return out


def _construct_mapping(loader: _StrictSafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A mapping with merge keys resolved (explicit keys override merged ones, an earlier merged
    mapping overrides a later one, as the YAML merge-key spec says); a key given twice explicitly,
    or two ``<<`` keys, is an error. Merged mappings are shared objects, so the work is linear in
    the document (PyYAML's own flattening copies node lists and can grow exponentially)."""
    merged: dict[Any, Any] = {}
    explicit: list[tuple[Any, yaml.Node]] = []
    seen: set[Any] = set()
    merge_seen = False
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            if merge_seen:
                raise yaml.constructor.ConstructorError(None, None, "duplicate merge key '<<'", key_node.start_mark)
            merge_seen = True
            for source in reversed(_merged_sources(loader, value_node)):
                merged.update(source)
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
        explicit.append((key, value_node))
    out = merged
    for key, value_node in explicit:
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader (no Python object tags) and no duplicate keys."""
    return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - strict *safe* loader subclass


def load_yaml_file(path: str | os.PathLike[str]) -> tuple[Any, str | None]:
    """``(document, None)``, or ``(None, why)`` when the file cannot be read, is over the size
    limits (bytes; YAML nodes with aliases expanded), or is not valid YAML. Never raises on a bad
    file; an invalid limit variable (``CONFORMANCE_MAX_*``) is reported as the reason too."""
    try:
        msg = over_limit("file_bytes", "file size in bytes", Path(path).stat().st_size)
        if msg:
            return None, msg
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, f"cannot read file: not UTF-8 text ({exc})"
    except LimitSettingError as exc:
        return None, str(exc)
    except (OSError, ValueError) as exc:
        return None, f"cannot read file: {exc}"
    try:
        data = load_yaml(text)
        nodes = expanded_nodes(data, limit("yaml_nodes"))
    except RecursionError:
        return None, "not valid YAML: nested too deeply"
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's word for it
            return None, f"not valid YAML: nested too deeply ({' '.join(str(exc).split())})"
        return None, f"not valid YAML: {exc}"
    except LimitSettingError as exc:
        return None, str(exc)
    except ValueError as exc:  # e.g. an integer over Python's digit limit, a bad date
        return None, f"not valid YAML: {exc}"
    msg = over_limit("yaml_nodes", "YAML nodes with aliases expanded", nodes, counted_to_cap=True)
    if msg:
        return None, msg
    return data, None
