"""python/dnnfast's imports run downward: no module imports, directly or
through others, a module that imports it (DESIGN.md, "Layers"). The graph is
read from the source with ast, so it sees every import, also those inside
functions (a lazy import hides a circle, it does not remove it)."""
from __future__ import annotations

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python", "dnnfast")


def _modules():
    out = {}
    base = os.path.dirname(PACKAGE)
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                if name.endswith(".__init__"):
                    name = name[: -len(".__init__")]
                out[name] = path
    out["dnnfast._core"] = None  # the compiled module: a leaf
    return out


def _resolve(module, is_package, level, target):
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([target] if target else []))


def import_graph(lazy=True):
    """{module: {modules of the package it imports}} (``lazy``: also inside functions)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        if path is None:
            graph[name] = set()
            continue
        is_package = path.endswith("__init__.py")
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        nodes = ast.walk(tree) if lazy else tree.body
        deps = set()
        for node in nodes:
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module) if node.level else node.module or ""
                # `from pkg import sub` depends on pkg.sub; `from pkg import name` on pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                # the longest known module the import names (a name imported from it counts as it)
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("dnnfast"):
                    deps.add(t)
        graph[name] = deps
    return graph


def find_cycle(graph):
    """One cycle as a list of modules, or None."""
    color = {}

    def visit(node, stack):
        color[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is no circle
            if node == dep.rpartition(".")[0] and dep.startswith(node + "."):
                continue
            if color.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if color.get(dep) is None:
                found = visit(dep, stack)
                if found:
                    return found
        stack.pop()
        color[node] = 2
        return None

    for node in sorted(graph):
        if color.get(node) is None:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_finder_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_training_driver_imports_no_model_or_mpi_module():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("dnnfast._train"):
            bad = {d for d in deps if d in ("dnnfast.network", "dnnfast.distributed")
                   or d.startswith("dnnfast._estimators") or d == "dnnfast.estimators"}
            assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("lazy", [False, True], ids=["module-level", "with-lazy"])
def test_no_import_circle(lazy):
    cycle = find_cycle(import_graph(lazy))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def _reaches(graph, start):
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_model_files_are_layered():
    """DESIGN.md "Layers", io/: the archive at the bottom, each codec beside its class
    (and below it), ``load`` on top; lazy imports count."""
    graph = import_graph()
    # The archive reader/writer imports no model, codec or training module.
    assert graph["dnnfast._archive"] <= {"dnnfast._core", "dnnfast._registry", "dnnfast._validation"}, \
        sorted(graph["dnnfast._archive"])
    # A codec is handed its class: it reaches neither its class, nor the other codec, nor the top.
    for codec, forbidden in [
        ("dnnfast._network_file", ("dnnfast.network", "dnnfast._estimators", "dnnfast._model_files")),
        ("dnnfast._estimators._file", ("dnnfast.network", "dnnfast._network_file", "dnnfast._model_files",
                                       "dnnfast._estimators._base", "dnnfast._estimators._classifier",
                                       "dnnfast._estimators._regressor")),
    ]:
        bad = sorted(m for m in _reaches(graph, codec) if m.startswith(forbidden))
        assert not bad, f"{codec} reaches {bad}"
    # The classes save through their own codec, never through the top.
    assert "dnnfast._network_file" in graph["dnnfast.network"]
    assert "dnnfast._estimators._file" in graph["dnnfast._estimators._base"]
    importers = sorted(m for m, deps in graph.items() if "dnnfast._model_files" in deps)
    assert importers == ["dnnfast"], f"only dnnfast.load imports the top of the model files: {importers}"
