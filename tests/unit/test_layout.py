"""The package's layout: the engine names no framework (everything framework-specific lives in the
framework's folder under ``convt_conformance/adapters`` and reaches the engine through the adapter's
hooks), and no two modules import each other, directly or through others."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import grimp

import convt_conformance

PACKAGE = Path(convt_conformance.__file__).resolve().parent
#: the frameworks the engine must not name (the NumPy reference is the engine's own arithmetic)
FRAMEWORK_NAMES = ("torch", "tensorflow", "jax", "keras", "onnx", "onnxruntime", "openvino", "litert", "ai_edge_litert",
                   "paddle", "mlx", "tinygrad")
_NAME = re.compile(r"(?<![a-z0-9])(" + "|".join(sorted(FRAMEWORK_NAMES, key=len, reverse=True)) + r")(?![a-z0-9])",
                   re.I)
_STRINGS = {tokenize.STRING, *(getattr(tokenize, t) for t in ("FSTRING_MIDDLE",) if hasattr(tokenize, t))}


def _engine_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if p.relative_to(PACKAGE).parts[0] != "adapters" and "__pycache__" not in p.parts)


def _docstrings(tree: ast.Module) -> set[tuple[int, int]]:
    """Where each docstring starts (line, column)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add((first.lineno, first.col_offset))
    return out


def framework_names_in(source: str) -> Iterator[tuple[int, str]]:
    """(line, token) of every identifier or string naming a framework, docstrings and comments aside."""
    docs = _docstrings(ast.parse(source))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.start in docs:
            continue
        if (tok.type == tokenize.NAME or tok.type in _STRINGS) and _NAME.search(tok.string):
            yield tok.start[0], tok.string


def test_the_scan_sees_code_and_skips_docstrings_and_comments():
    source = ('"""Calls torch."""\n'
              "import os  # jax\n"
              "def f():\n"
              '    """keras."""\n'
              '    return os.environ.get("TF_CPP") or default_jax_cache() or f"{x}onnx"\n'
              "tensorflow = 1\n")
    assert [line for line, _ in framework_names_in(source)] == [5, 5, 6]
    assert list(framework_names_in("pytorch_like = 'JAXY'\nrun = 'onnxruntime'\n")) == [(2, "'onnxruntime'")]


def test_no_module_outside_the_adapters_names_a_framework():
    found = []
    for path in _engine_modules():
        rel = path.relative_to(PACKAGE.parent)
        if _NAME.search(str(rel.with_suffix(""))):
            found.append(f"{rel}: the module's path names a framework")
        found += [f"{rel}:{line}: {text[:80]}" for line, text in
                  framework_names_in(path.read_text(encoding="utf-8"))]
    assert found == [], ("framework names in the engine (move them behind an adapter hook, "
                         "convt_conformance/adapters/base.py):\n" + "\n".join(found))


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_the_cycle_search_finds_a_cycle():
    graph = grimp.ImportGraph()
    for m in ("p.a", "p.b", "p.c", "p.d"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.c", imported="p.d")
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_import_graph_has_no_cycle():
    """Every import that runs counts, those inside functions too (not those under TYPE_CHECKING,
    which only the type checker follows)."""
    graph = grimp.build_graph("convt_conformance", cache_dir=None, exclude_type_checking_imports=True)
    found = []
    for component in _cycles(graph):
        edges = [f"  {a} -> {b} (line {', '.join(str(d['line_number']) for d in graph.get_import_details(importer=a, imported=b))})"
                 for a in component for b in sorted(graph.find_modules_directly_imported_by(a)) if b in component]
        found.append("cycle among " + ", ".join(component) + ":\n" + "\n".join(edges))
    assert found == [], "\n".join(found)
