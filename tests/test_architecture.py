"""The shape of the package: data flows down only (public layer -> dispatch -> pipeline ->
backend -> kernels), read from the source with ``ast``.

Every import counts, also one inside a function: an import placed there to dodge a cycle is still
a cycle. A package's ``__init__`` running before its submodules is not counted as an edge.
"""

import ast
from pathlib import Path

import pytest

import lsm

ROOT = Path(lsm.__file__).parent
PUBLIC = {"lsm", "lsm._api", "lsm._gradients", "lsm._losses", "lsm._dispatch"}
BACKENDS = ("lsm.cpu", "lsm.cuda", "lsm.dask")


def _module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in ROOT.rglob("*.py")}


def _package(name):
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _imports(name):
    """The lsm modules that module ``name`` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(name).split(".")
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:  # a submodule, or a name defined in the module ``base``
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {target for target in found if target in MODULES and target != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle_from(start):
    """One import cycle through ``start`` as a list of modules, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for target in GRAPH[node]:
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_the_walk_sees_the_layers():
    """A broken walk would pass the tests below vacuously."""
    assert "lsm._pipeline" in GRAPH["lsm._dispatch"]
    assert "lsm._validate" in GRAPH["lsm._pipeline"]
    assert "lsm.cpu" in GRAPH["lsm._devices"] and "lsm.cuda" in GRAPH["lsm._devices"]  # lazy too
    assert "lsm.dask" in GRAPH["lsm._dispatch"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycles(name):
    assert _cycle_from(name) is None, " -> ".join(_cycle_from(name))


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name.startswith(BACKENDS)))
def test_backends_never_import_the_public_layer(name):
    assert not GRAPH[name] & PUBLIC, f"{name} imports {sorted(GRAPH[name] & PUBLIC)}"


def test_the_pipeline_knows_no_backend():
    """The pipeline gets its backend from the caller; only dispatch decides which it is."""
    reached, frontier = set(), {"lsm._pipeline"}
    while frontier:
        reached |= frontier
        frontier = set().union(*(GRAPH[name] for name in frontier)) - reached
    assert not any(name.startswith(BACKENDS) for name in reached), sorted(reached)
