"""Safe YAML loading: no Python object tags, duplicate mapping keys refused (PyYAML silently keeps
the last), standard merge keys (``<<: *anchor`` or ``<<: [*a, *b]``) supported, and every file
read through the size limits of :mod:`convt_conformance.model.limits`: only regular files, at most
the byte limit read, and the YAML nodes (aliases expanded) counted while the file is parsed,
before any node is built."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from convt_conformance.model.limits import LimitSettingError, limit, over_limit

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


class TooManyNodes(yaml.YAMLError):
    """The document has more nodes, aliases expanded, than the ``yaml_nodes`` limit."""


class _Frame:
    """An open sequence or mapping while counting: its anchor, the nodes of its entries so far,
    and whether it is the value of a merge key ``<<`` (then it contributes its mappings' entries,
    not itself). A mapping that a merge may take (anchored, or written in a merge key's value)
    keeps its entries by key, so a merge adds only the keys it brings; another one only counts."""

    __slots__ = ("anchor", "is_map", "merge_value", "track", "size", "explicit", "merged", "sources", "key",
                 "key_size", "key_is_merge", "want_key")

    def __init__(self, anchor: str | None, is_map: bool, merge_value: bool) -> None:
        self.anchor, self.is_map, self.merge_value = anchor, is_map, merge_value
        self.track = is_map and (anchor is not None or merge_value)
        self.size = 1  # the nodes so far, but a tracked mapping's (its explicit and merged entries)
        self.explicit: dict[object, int] = {}
        self.merged: dict[object, int] = {}
        self.sources: list[dict[object, int]] = []  # a merge value's mappings, in order
        self.key: object = None
        self.key_size, self.key_is_merge, self.want_key = 0, False, True

    def entries(self) -> dict[object, int] | None:
        """A tracked mapping's entries as constructed (explicit keys over merged ones), each
        counting its key and value nodes; None for any other node."""
        return {**self.merged, **self.explicit} if self.track else None

    def nodes(self, entries: dict[object, int] | None) -> int:
        """The nodes of the finished node (``entries``: :meth:`entries`), aliases expanded; an
        untracked mapping counts a key both written and merged twice (never fewer nodes)."""
        if entries is not None:
            return 1 + sum(entries.values())
        return self.size + sum(self.merged.values())

    def in_merge_position(self) -> bool:
        """Whether the node arriving now is (an item of) a merge key's value."""
        return self.merge_value and not self.is_map or (self.is_map and not self.want_key and self.key_is_merge)


def count_nodes(text: str, cap: int) -> int:
    """The nodes of ``text`` as constructed with every alias copied out (a merge key counts the
    entries it adds, once per key), counted from the parser's events before any node is built;
    :class:`TooManyNodes` as soon as the count passes ``cap``, so a 10 MB file or a 600-byte
    "billion laughs" costs one bounded pass and no memory. An alias to a node still open (a
    recursive alias) expands without end: over the cap. A syntax error raises the parser's own
    error, as the parse would; an undefined alias counts 1 (the parse that follows reports it).

    Events rather than nodes: PyYAML's composer in Python (the C one cannot be stopped midway)
    was many times slower and kept every node until it reached the cap."""
    parser = _BaseLoader(text)
    get: Callable[[], Any] = parser.get_event  # PyYAML's parser is unannotated: its events read as Any
    count = 0  # the work so far: at least the nodes of the finished document
    sizes: dict[str, int] = {}  # anchor -> nodes of its node, aliases expanded
    maps: dict[str, dict[object, int]] = {}  # anchor of a mapping -> its entries
    stack: list[_Frame] = []
    scalar = yaml.ScalarEvent

    def finish(size: int, entries: dict[object, int] | None, key: object) -> None:
        """A node of ``size`` nodes (a mapping's ``entries``) is complete: enter it in its parent."""
        nonlocal count
        if not stack:
            return
        top = stack[-1]
        if not top.is_map:
            if top.merge_value:
                top.sources.append(entries or {})
            else:
                top.size += size
        elif top.want_key:
            top.key, top.key_size, top.want_key = key, size, False
            top.key_is_merge = key == (None, "<<", True)
        else:
            if top.key_is_merge:
                for source in ([entries or {}] if entries is not None or not top.sources else top.sources):
                    for k, n in source.items():
                        if k not in top.merged:
                            top.merged[k] = n
                            count += n
            elif top.track:
                top.explicit[top.key if top.key is not None else object()] = top.key_size + size
            else:
                top.size += top.key_size + size
            top.want_key = True

    try:
        while (ev := get()) is not None:
            kind = type(ev)
            top = stack[-1] if stack else None
            if kind is scalar and top is not None and not top.is_map and not top.merge_value:
                count += 1  # the common case, a scalar in a list: kept short
                top.size += 1
                if ev.anchor is not None:
                    sizes[ev.anchor] = 1
                continue
            merge_here = top is not None and top.in_merge_position()
            if kind is scalar:
                count += 1
                if ev.anchor is not None:
                    sizes[ev.anchor] = 1
                finish(1, None, (ev.tag, ev.value, ev.implicit[0]))
            elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                count += 1
                if ev.anchor is not None:  # open: an alias to it now is recursive
                    sizes.pop(ev.anchor, None)
                    maps.pop(ev.anchor, None)
                stack.append(_Frame(ev.anchor, kind is yaml.MappingStartEvent, merge_here))
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                frame = stack.pop()
                entries = frame.entries()
                size = frame.nodes(entries)
                if frame.anchor is not None:
                    sizes[frame.anchor] = size
                    if entries is not None:
                        maps[frame.anchor] = entries
                if frame.merge_value and not frame.is_map:
                    stack[-1].sources = frame.sources  # the merge key's mappings, for its mapping
                    finish(size, None, None)
                else:
                    finish(size, entries, object())
            elif kind is yaml.AliasEvent:
                if any(f.anchor == ev.anchor for f in stack):
                    count += cap + 1
                    size = cap + 1
                else:
                    size = sizes.get(ev.anchor, 1)
                    # a merged mapping adds the keys it brings (below); anything else counts whole
                    count += 0 if merge_here and ev.anchor in maps else size
                finish(size, maps.get(ev.anchor), object())
            if count > cap:
                raise TooManyNodes(f"more than {cap} nodes")
    finally:
        parser.dispose()
    return count


def read_bounded(path: str | os.PathLike[str]) -> tuple[bytes | None, str | None]:
    """``(content, None)`` of a regular file of at most the ``file_bytes`` limit, or ``(None, why)``.

    Anything else is refused before a byte is read: a directory, a device (``/dev/zero`` never
    ends), a FIFO or a socket (reading one waits for a writer). The file is opened without
    blocking and checked on the open descriptor (``fstat``), so it cannot be swapped for a FIFO
    after the check, and at most the limit + 1 bytes are read whatever its size says (a file
    that grows while read, or a ``/proc`` file whose size reads 0)."""
    try:
        cap = limit("file_bytes")
    except LimitSettingError as exc:
        return None, str(exc)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        return None, f"cannot read file: {exc}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"cannot read file: not a regular file ({_file_kind(st.st_mode)})"
        msg = over_limit("file_bytes", "file size in bytes", st.st_size)
        if msg:
            return None, msg
        chunks: list[bytes] = []
        got = 0
        while got <= cap:
            chunk = os.read(fd, min(cap + 1 - got, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        return None, f"cannot read file: {exc}"
    finally:
        os.close(fd)
    if got > cap:  # it grew while read
        return None, over_limit("file_bytes", "file size in bytes", got, counted_to_cap=True)
    return b"".join(chunks), None


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def load_yaml_file(path: str | os.PathLike[str]) -> tuple[Any, str | None]:
    """``(document, None)``, or ``(None, why)`` when the file cannot be read (not a regular
    file: :func:`read_bounded`), is over the size limits (bytes; YAML nodes with aliases
    expanded: counted while parsing, :func:`count_nodes`), or is not valid YAML. Never raises on
    a bad file; an invalid limit variable (``CONFORMANCE_MAX_*``) is reported as the reason too."""
    raw, why = read_bounded(path)
    if raw is None:
        return None, why
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"cannot read file: not UTF-8 text ({exc})"
    try:
        count_nodes(text, limit("yaml_nodes"))
        data = load_yaml(text)
    except TooManyNodes:
        return None, over_limit("yaml_nodes", "YAML nodes with aliases expanded", limit("yaml_nodes") + 1,
                                counted_to_cap=True)
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
    return data, None
