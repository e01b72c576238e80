"""The rules that make a configuration invalid, and how a framework's rejection is read.

Data in ``convt_conformance/checking/invalid_rules.yaml`` (one place): each rule has a stable id, a
description and the loader's reason strings for it (``cases.py`` / ``geometry.problems()``), and
the patterns every framework shares. Each framework's own patterns are beside its adapter (its
``rejections.yaml``, the adapter's ``rejections_file``): per rule, regexes of a validation message
that names it; regexes of internal failures (an assertion, a library refusing a descriptor) that
stop a configuration without checking it; the modules whose frames are the framework's. Used by
``convt_conformance.checking.check`` for ``expected.error`` cases:

- :func:`rules_of_reasons`: which rule ids a case breaks (from ``Case.invalid_reasons``);
- :func:`classify_rejection`: ``{rule_named, expected_rules, kind}`` for an exception, ``kind``
  ``"validation"`` (a validation message; ``rule_named`` the rule it names, or None when no
  known rule's pattern matches) or ``"internal"`` (stopped, not checked);
- :func:`raised_by_adapter`: whether an exception is the adapter's own failure (its own
  ``raise``, a failed lookup, a non-framework library it called), which is never a rejection.
"""

from __future__ import annotations

import dis
import functools
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from convt_conformance.adapters.registry import AdapterLoadError, adapter_class, entries
from convt_conformance.loading.scope import VersionScope, parse_versions
from convt_conformance.loading.yaml_io import load_yaml

RULES_FILE = Path(__file__).with_name("invalid_rules.yaml")


@dataclass(frozen=True)
class Rule:
    """One validity rule: stable id, description, loader reason and framework message patterns."""

    id: str
    description: str
    reasons: tuple[re.Pattern, ...]
    messages: dict[str, tuple[re.Pattern, ...]]

    def named_by(self, framework: str, text: str) -> bool:
        pats = self.messages.get(framework, ()) + self.messages.get("*", ())
        return any(p.search(text) for p in pats)


def _compile(pats: object, where: str, source: Path = RULES_FILE) -> tuple[re.Pattern[str], ...]:
    if not isinstance(pats, list) or not all(isinstance(p, str) for p in pats):
        raise ValueError(f"{source}: {where}: must be a list of regex strings")
    try:
        return tuple(re.compile(p, re.I | re.S) for p in pats)
    except re.error as exc:
        raise ValueError(f"{source}: {where}: bad regex: {exc}") from None


def _shared_only(patterns: object, where: str) -> dict[str, object]:
    """``invalid_rules.yaml``'s patterns by framework: ``*`` only (a framework's own are in its
    ``rejections.yaml``)."""
    if not isinstance(patterns, dict):
        raise ValueError(f"{RULES_FILE}: {where}: must be a mapping {{'*': [regex, ...]}}")
    other = sorted(set(patterns) - {"*"})
    if other:
        raise ValueError(f"{RULES_FILE}: {where}: {other}: a framework's own patterns belong in its "
                         "adapter's rejections.yaml (the Adapter's rejections_file)")
    return patterns


@dataclass(frozen=True)
class Refusal:
    """A framework's own refusal of a valid configuration it does not implement (``unsupported``),
    and the releases it was seen on: outside them the same message is an ``error``."""

    pattern: re.Pattern[str]
    versions: VersionScope


@dataclass(frozen=True)
class FrameworkRejections:
    """One framework's ``rejections.yaml``: validation-message patterns by rule id, internal-failure
    patterns, the modules (besides the adapter's ``module``) whose frames are the framework's, and
    its refusals of valid configurations (``unsupported``)."""

    messages: dict[str, tuple[re.Pattern, ...]]
    internal: tuple[re.Pattern, ...]
    modules: tuple[str, ...]
    unsupported: tuple[Refusal, ...] = ()


def _refusals(items: object, path: Path) -> tuple[Refusal, ...]:
    if not isinstance(items, list):
        raise ValueError(f"{path}: unsupported: must be a list of {{pattern, versions}}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"pattern", "versions"} or "pattern" not in item:
            raise ValueError(f"{path}: unsupported[{i}]: must be a mapping with `pattern` and `versions` (and nothing else)")
        if "versions" not in item:
            raise ValueError(f"{path}: unsupported[{i}]: `versions` is required (the releases the refusal was seen on)")
        scope, why = parse_versions(item["versions"])
        if scope is None:
            raise ValueError(f"{path}: unsupported[{i}]: versions: {why}")
        (pattern,) = _compile([item["pattern"]], f"unsupported[{i}].pattern", path)
        out.append(Refusal(pattern, scope))
    return tuple(out)


def refusal_of(framework: str, text: str) -> tuple[Refusal | None, bool]:
    """The framework's refusal pattern matching ``text`` (None: none does) and whether the
    installed releases are ones it was seen on."""
    rej = framework_rejections().get(framework)
    for r in rej.unsupported if rej is not None else ():
        if r.pattern.search(text):
            return r, r.versions.holds()
    return None, False


def read_rejections(path: Path, rule_ids: set[str] | frozenset[str]) -> FrameworkRejections:
    """A framework's rejections file, checked: known keys, known rule ids, lists of regexes."""
    data = load_yaml(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must be a mapping (messages, internal, modules)")
    unknown = sorted(set(data) - {"messages", "internal", "modules", "unsupported"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} (messages, internal, modules, unsupported)")
    messages = data.get("messages") or {}
    if not isinstance(messages, dict):
        raise ValueError(f"{path}: messages: must be a mapping of rule id to regexes")
    strangers = sorted(set(messages) - set(rule_ids))
    if strangers:
        raise ValueError(f"{path}: messages: unknown rule id(s) {strangers} (the rules: {RULES_FILE})")
    modules = data.get("modules") or []
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ValueError(f"{path}: modules: must be a list of dotted module names")
    return FrameworkRejections(
        messages={rid: _compile(p, f"messages.{rid}", path) for rid, p in messages.items()},
        internal=_compile(data.get("internal") or [], "internal", path), modules=tuple(modules),
        unsupported=_refusals(data.get("unsupported") or [], path))


def framework_rejections() -> dict[str, FrameworkRejections]:
    """Every registered framework's rejections (its adapter's ``rejections_file``), by name, in the
    registry's order; a framework whose adapter cannot be loaded has none (its checks cannot run)."""
    rule_ids = frozenset(_shared_rules()[0])
    out = {}
    for name in entries():
        try:
            path = adapter_class(name).rejections_file()
        except AdapterLoadError:
            continue
        if path is not None:
            stat = path.stat()
            out[name] = _read_rejections_once(str(path), stat.st_mtime_ns, stat.st_size, rule_ids)
    return out


@functools.lru_cache(maxsize=64)
def _read_rejections_once(path: str, mtime_ns: int, size: int, rule_ids: frozenset[str]) -> FrameworkRejections:
    """:func:`read_rejections`, once per version of the file (a check that is refused looks its
    framework's patterns up; reading and compiling them each time cost ~8 ms a refusal)."""
    return read_rejections(Path(path), rule_ids)


@functools.lru_cache(maxsize=1)
def _shared_rules() -> tuple[dict[str, Rule], tuple[re.Pattern, ...]]:
    """The rules of ``invalid_rules.yaml`` with the patterns every framework shares (``*``), and
    the shared internal-failure patterns."""
    data = load_yaml(RULES_FILE.read_text(encoding="utf-8"))
    rules = {}
    for rid, spec in data["rules"].items():
        shared = _shared_only(spec.get("messages") or {}, f"rules.{rid}.messages")
        rules[rid] = Rule(
            id=rid, description=str(spec.get("description", "")),
            reasons=_compile(spec.get("reasons", []), f"rules.{rid}.reasons"),
            messages={fw: _compile(p, f"rules.{rid}.messages.{fw}") for fw, p in shared.items()})
    shared_internal = _shared_only(data.get("internal") or {}, "internal")
    return rules, _compile(shared_internal.get("*") or [], "internal.*")


@functools.lru_cache(maxsize=1)
def load_rules() -> tuple[dict[str, Rule], dict[str, tuple[re.Pattern, ...]], dict[str, tuple[str, ...]]]:
    """(rules by id, internal-failure patterns by framework, extra framework modules by
    framework): ``invalid_rules.yaml`` (framework ``*``) joined with every registered framework's
    rejections (:func:`framework_rejections`)."""
    shared, shared_internal = _shared_rules()
    frameworks = framework_rejections()
    rules = {rid: Rule(rule.id, rule.description, rule.reasons,
                       {**rule.messages, **{fw: r.messages[rid] for fw, r in frameworks.items() if rid in r.messages}})
             for rid, rule in shared.items()}
    internal = {"*": shared_internal} if shared_internal else {}
    internal.update({fw: r.internal for fw, r in frameworks.items() if r.internal})
    modules = {fw: r.modules for fw, r in frameworks.items() if r.modules}
    return rules, internal, modules


def rule_ids() -> list[str]:
    """Every rule id, in file order."""
    return list(load_rules()[0])


def rule_of_reason(reason: str) -> str | None:
    """The rule id whose reason pattern matches one of the loader's reason strings."""
    for rule in load_rules()[0].values():
        if any(p.search(reason) for p in rule.reasons):
            return rule.id
    return None


def rules_of_reasons(reasons: tuple[str, ...] | list[str]) -> list[str]:
    """The distinct rule ids a case breaks (``"unknown"`` for a reason no rule describes)."""
    out: list[str] = []
    for r in reasons:
        rid = rule_of_reason(r) or "unknown"
        if rid not in out:
            out.append(rid)
    return out


def framework_modules(adapter_name: str, module: str) -> tuple[str, ...]:
    """Modules (dotted names; their submodules included) whose frames count as the framework's
    (the adapter's import name, plus ``modules`` of the framework's rejections.yaml)."""
    extra = load_rules()[2].get(adapter_name, ())
    return tuple(dict.fromkeys((module or adapter_name, *extra)))


def is_internal(framework: str, text: str) -> bool:
    """Whether ``"Type: message"`` is an internal failure rather than a validation message."""
    internal = load_rules()[1]
    return any(p.search(text) for p in internal.get(framework, ()) + internal.get("*", ()))


def classify_rejection(framework: str, text: str, expected_rules: list[str]) -> dict:
    """``{rule_named, expected_rules, kind}`` for a framework's exception text ``"Type: message"``.

    ``rule_named``: an expected rule the message names when there is one (JAX's "dilations must
    be positive" names stride and dilation alike), else any other rule it names, else None."""
    rules = load_rules()[0]
    if is_internal(framework, text):
        return {"rule_named": None, "expected_rules": list(expected_rules), "kind": "internal"}
    named = [rid for rid, rule in rules.items() if rule.named_by(framework, text)]
    hit = next((r for r in named if r in expected_rules), named[0] if named else None)
    return {"rule_named": hit, "expected_rules": list(expected_rules), "kind": "validation"}


_ADAPTERS_DIR = Path(__file__).resolve().parent.parent / "adapters"
_CALLS = {"CALL", "PRECALL", "CALL_FUNCTION_EX", "CALL_KW", "CALL_FUNCTION", "CALL_METHOD"}
# Through a call: lookups only (an AssertionError/IndexError may come from a framework whose frames
# are hidden, e.g. by JAX's traceback filtering).
_LOOKUP_ERRORS = (KeyError, AttributeError, NameError)


def _is_adapter_file(filename: str, extra: tuple[str, ...] = ()) -> bool:
    p = Path(filename).resolve()
    return p.is_relative_to(_ADAPTERS_DIR) or str(p) in extra


def adapter_files(adapter: object) -> tuple[str, ...]:
    """The files of the adapter's class and its bases (a plugin's adapter module included),
    except the NumPy reference: the code whose own failures are never a rejection."""
    out = []
    for cls in type(adapter).__mro__:
        try:
            f = inspect.getsourcefile(cls)
        except TypeError:  # builtins (object)
            continue
        if f:
            out.append(str(Path(f).resolve()))
    return tuple(out)


def _in_modules(module_name: str, modules: tuple[str, ...]) -> bool:
    return any(module_name == m or module_name.startswith(m + ".") for m in modules)


def raised_by_adapter(exc: BaseException, framework_modules: tuple[str, ...],
                      adapter_code: tuple[str, ...] = ()) -> str | None:
    """Why ``exc`` is the adapter's own failure (None when it comes from the framework).

    Walks the traceback to the innermost frame in adapter code (``adapters/*.py`` except the
    NumPy reference, and ``adapter_code``: :func:`adapter_files`). Deeper frames in a package other than the framework's (NumPy for the TF
    adapter) -> the adapter's own. No deeper frame: raised at the adapter's line itself, by its
    own ``raise`` or a failed lookup (a non-call instruction), or a KeyError / AttributeError /
    NameError from a call (a builtin's lookup, not a framework's check). An adapter's ``raise ...
    from cause`` (wrapping a framework's error to say which component refused) is judged by
    its cause."""
    from convt_conformance.adapters.base import FrameworkError

    if isinstance(exc, FrameworkError):  # the framework's error, carried from another process
        return None
    tb: TracebackType | None = exc.__traceback__
    last_adapter: TracebackType | None = None
    deeper: list[str] = []  # the modules of the frames below the last adapter frame
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if _is_adapter_file(fname, adapter_code):
            last_adapter, deeper = tb, []
        elif last_adapter is not None:
            deeper.append(str(tb.tb_frame.f_globals.get("__name__", fname)))
        tb = tb.tb_next
    if last_adapter is None:
        return None
    where = f"{Path(last_adapter.tb_frame.f_code.co_filename).name}:{last_adapter.tb_lineno}"
    if deeper:
        if any(_in_modules(m, framework_modules) for m in deeper):
            return None
        return f"raised in {deeper[0]} code called by the adapter at {where}, not by the framework"
    op = _instruction(last_adapter)
    if op not in _CALLS:
        if exc.__cause__ is not None:  # `raise Wrapped(...) from framework_error`: judged by its cause
            return raised_by_adapter(exc.__cause__, framework_modules, adapter_code)
        return f"raised by the adapter's own code at {where} ({op or 'unknown instruction'})"
    if isinstance(exc, _LOOKUP_ERRORS):
        return f"{type(exc).__name__} from a call at the adapter's {where}: a lookup failure, not a validation"
    return None


def _instruction(tb: TracebackType) -> str:
    """The instruction a traceback entry stopped at (tb_lasti may point into a CALL's inline
    cache, e.g. in tracebacks rebuilt by JAX's filtering: the last instruction at or before it)."""
    name = ""
    for ins in dis.get_instructions(tb.tb_frame.f_code):
        if ins.offset > tb.tb_lasti:
            break
        name = ins.opname
    return name
