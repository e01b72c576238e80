"""A framework's native calls, written once: each framework folder's ``calls.py`` holds them as
plain functions that import only the framework and NumPy. The adapter runs them; a reproducer
embeds their source text and calls them with the recorded arguments written as literals.

A record names its call by structured fields of ``NativeCall.arguments``:

- ``arguments["call"]``: the function's name in the framework's ``calls.py`` (one of its ``CALLS``);
- ``arguments["call_kwargs"]``: its keyword arguments, plain literals (ints, floats, strings,
  booleans, None, and lists / tuples / dicts of them).

A ``calls.py`` may also define ``HELPERS = ("name", ...)``: functions its calls share (a tensor
conversion, a one-node model, a compile cache). A record cannot name one; the script gets the
source of each helper the call's function uses (by name, and the helpers those use) before it.

Nothing else of a record reaches a script: a name that is not one of ``CALLS`` or an argument
that is not a plain literal gives no source (the reproducer then says it cannot reproduce the
call), so a results file from someone else never puts code into a script.
"""

from __future__ import annotations

import ast
import inspect
import keyword
import math
import textwrap
from collections.abc import Callable
from types import ModuleType
from typing import Any


def is_literal(value: Any) -> bool:
    """Whether ``value`` is a plain literal that ``repr`` writes and ``ast.literal_eval`` reads back
    unchanged (finite floats only: ``repr(inf)`` is not a literal)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_literal(v) for k, v in value.items())
    return False


def literal(value: Any) -> str:
    """``repr(value)`` for a plain literal (checked: :func:`is_literal`); ValueError otherwise."""
    if not is_literal(value):
        raise ValueError(f"not a plain literal: {type(value).__name__}")
    text = repr(value)
    if ast.literal_eval(text) != value:  # pragma: no cover - is_literal admits only round-tripping values
        raise ValueError("literal does not round-trip")
    return text


def call_function(calls: ModuleType, name: object) -> Callable[..., Any] | None:
    """The function ``name`` of a framework's ``calls`` module when it is one of its ``CALLS``."""
    allowed: tuple[str, ...] = getattr(calls, "CALLS", ())
    if not isinstance(name, str) or name not in allowed:
        return None
    fn = getattr(calls, name, None)
    return fn if callable(fn) else None


def function_source(calls: ModuleType, name: str) -> str:
    """The source text of the function ``name`` of ``calls`` (as the adapter runs it)."""
    fn = call_function(calls, name)
    if fn is None:
        raise KeyError(f"{calls.__name__}: {name!r} is not one of its CALLS")
    return inspect.getsource(fn)


def helper_sources(calls: ModuleType, source: str) -> list[str]:
    """The sources of the ``HELPERS`` of ``calls`` that ``source`` uses, directly or through
    another helper, in the order ``HELPERS`` lists them."""
    helpers: tuple[str, ...] = getattr(calls, "HELPERS", ())
    used: set[str] = set()
    todo = [source]
    while todo:
        names = {n.id for n in ast.walk(ast.parse(todo.pop())) if isinstance(n, ast.Name)}
        for name in sorted(names & set(helpers) - used):
            used.add(name)
            todo.append(inspect.getsource(getattr(calls, name)))
    return [inspect.getsource(getattr(calls, name)) for name in helpers if name in used]


def call_source(calls: ModuleType, arguments: dict[str, Any], positional: str = "x, w, b",
                result: str = "y") -> str | None:
    """Lines defining the recorded call's function (its source from ``calls``, after the helpers
    it uses) and calling it: ``<result> = <name>(<positional>, <keyword>=<literal>, ...)``. None
    when the record names no call of ``calls`` or holds an argument that is not a plain literal."""
    name = arguments.get("call")
    kwargs = arguments.get("call_kwargs", {})
    if call_function(calls, name) is None or not isinstance(kwargs, dict) or not is_literal(kwargs):
        return None
    if not all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in kwargs):
        return None
    args = ", ".join([positional, *(f"{k}={literal(v)}" for k, v in kwargs.items())]) if positional else \
        ", ".join(f"{k}={literal(v)}" for k, v in kwargs.items())
    source = function_source(calls, str(name))
    defs = [s.rstrip() for s in [*helper_sources(calls, textwrap.dedent(source)), source]]
    return "\n\n\n".join(defs) + f"\n\n\n{result} = {name}({args})\n"


def recorded_dtype_call(calls: ModuleType, native_call: dict[str, Any], names: tuple[str, ...], positional: str,
                        wrt: str | None = None) -> str | None:
    """:func:`call_source` of a record whose call is one of ``names`` and whose ``call_kwargs``
    hold the ``dtype`` (passed as the script's ``DTYPE``) and ``wrt`` (the differentiated tensor,
    None for a forward call): ``out, facts = <name>(<positional>, dtype=DTYPE, ...)``. None for a
    record that names none of them or another ``wrt``."""
    a = native_call.get("arguments")
    if not isinstance(a, dict) or a.get("call") not in names:
        return None
    kwargs = a.get("call_kwargs")
    if not isinstance(kwargs, dict) or "dtype" not in kwargs or kwargs.get("wrt") != wrt:
        return None
    own = {k: v for k, v in kwargs.items() if k != "dtype"}
    return call_source(calls, {"call": a["call"], "call_kwargs": own}, positional=f"{positional}, dtype=DTYPE",
                       result="out, facts")
