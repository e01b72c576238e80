"""Safe YAML loading that refuses duplicate mapping keys (PyYAML silently keeps the last)."""

from __future__ import annotations

from typing import Any

import yaml


class _StrictSafeLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictSafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictSafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader (no Python object tags) and no duplicate keys."""
    return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - strict *safe* loader subclass
