"""The one list of frameworks: the built-in adapters plus those that outside packages declare
through the entry-point group ``convt_conformance.adapters`` (name = the framework's name in
``--frameworks``, object = an :class:`convt_conformance.adapters.base.Adapter` subclass, ``module:Class``).

Everything else about a framework (its import name, distributions, devices, display order,
declared convention and naive probe call) is declared by its adapter class; nothing in the
engine lists frameworks. A plugin that cannot be loaded (import error, not an Adapter
subclass, a name clash) is reported with its error by :func:`registry_problems` and left out;
the other frameworks still run.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
from dataclasses import dataclass

from convt_conformance.adapters.base import Adapter

ENTRY_POINT_GROUP = "convt_conformance.adapters"
NAME_RE = re.compile(r"\A[a-z][a-z0-9_]*\Z")

#: name -> "module:Class" of the adapters that ship with the suite
BUILTIN: dict[str, str] = {
    "numpy": "convt_conformance.adapters.numpy.adapter:NumpyAdapter",
    "torch": "convt_conformance.adapters.torch.adapter:TorchAdapter",
    "tensorflow": "convt_conformance.adapters.tensorflow.adapter:TensorflowAdapter",
    "jax": "convt_conformance.adapters.jax.adapter:JaxAdapter",
    "onnx": "convt_conformance.adapters.onnx.adapter:OnnxAdapter",
    "keras": "convt_conformance.adapters.keras.adapter:KerasAdapter",
    "openvino": "convt_conformance.adapters.openvino.adapter:OpenvinoAdapter",
    "litert": "convt_conformance.adapters.litert.adapter:LitertAdapter",
    "paddle": "convt_conformance.adapters.paddle.adapter:PaddleAdapter",
    "mlx": "convt_conformance.adapters.mlx.adapter:MlxAdapter",
    "tinygrad": "convt_conformance.adapters.tinygrad.adapter:TinygradAdapter",
}


class AdapterLoadError(KeyError):
    """An unknown framework name, or an adapter class that cannot be loaded."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class AdapterEntry:
    """Where a framework's adapter comes from."""

    name: str
    target: str  # "module:Class"
    origin: str  # "built-in" or "entry point <dist> <version>"


def _load_target(target: str) -> type[Adapter]:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise TypeError(f"{target} is not an convt_conformance.adapters.base.Adapter subclass")
    return obj


@functools.lru_cache(maxsize=1)
def _scan() -> tuple[dict[str, AdapterEntry], tuple[str, ...]]:
    entries = {n: AdapterEntry(n, t, "built-in") for n, t in BUILTIN.items()}
    problems: list[str] = []
    try:
        eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    except Exception as exc:  # a broken distribution's metadata must not stop the run
        return entries, (f"entry points of group {ENTRY_POINT_GROUP!r} cannot be read: {exc}",)
    for ep in eps:
        dist = getattr(ep, "dist", None)
        origin = f"entry point {dist.name} {dist.version}" if dist is not None else "entry point"
        if not NAME_RE.match(ep.name):
            problems.append(f"plugin {ep.value} ({origin}): name {ep.name!r} must match {NAME_RE.pattern}")
        elif ep.name in entries:
            if entries[ep.name].target != ep.value:
                problems.append(f"plugin {ep.name} = {ep.value} ({origin}): the name is already taken by "
                                f"{entries[ep.name].target} ({entries[ep.name].origin}); ignored")
        else:
            entries[ep.name] = AdapterEntry(ep.name, ep.value, origin)
    return entries, tuple(problems)


@functools.cache
def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered under ``name`` (AdapterLoadError when unknown or broken)."""
    entries, _ = _scan()
    if name not in entries:
        raise AdapterLoadError(f"unknown framework {name!r}; known: {', '.join(adapter_names(loadable_only=False))}")
    e = entries[name]
    try:
        cls = _load_target(e.target)
    except Exception as exc:
        raise AdapterLoadError(f"framework {name!r} ({e.target}, {e.origin}) cannot be loaded: "
                               f"{type(exc).__name__}: {exc}") from exc
    if cls.name != name:
        raise AdapterLoadError(f"framework {name!r} ({e.target}, {e.origin}): the class declares "
                               f"name {cls.name!r}; they must be equal")
    return cls


def entries() -> dict[str, AdapterEntry]:
    """Every registered framework (loadable or not), by name."""
    return dict(_scan()[0])


def registry_problems() -> list[str]:
    """Plugins that are registered wrongly or cannot be loaded, each with its error."""
    problems = list(_scan()[1])
    for name in _scan()[0]:
        try:
            adapter_class(name)
        except AdapterLoadError as exc:
            problems.append(str(exc))
    return problems


def adapter_names(loadable_only: bool = True) -> tuple[str, ...]:
    """Registered framework names in display order (the adapter's ``order``, then name)."""
    names = list(_scan()[0])
    if not loadable_only:
        return tuple(names)
    ok = []
    for n in names:
        try:
            ok.append((adapter_class(n).order, n))
        except AdapterLoadError:
            continue
    return tuple(n for _, n in sorted(ok))


def get_adapter(name: str) -> Adapter:
    """A fresh adapter instance of the framework ``name``."""
    return adapter_class(name)()


def display_order(name: str) -> tuple[int, str]:
    """Sort key of a framework in reports (unknown names last)."""
    try:
        return (adapter_class(name).order, name)
    except AdapterLoadError:
        return (10_000, name)


def reset() -> None:
    """Forget the cached scan (tests that change sys.path or the installed plugins)."""
    _scan.cache_clear()
    adapter_class.cache_clear()
