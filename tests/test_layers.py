"""The import contract of s3free/, checked on every CI run: imports point down the layers, and
no module imports itself back through others (no cycle, inside a package either).

Layers, top to bottom (a module may import only from its own layer or below; `|` separates
independent siblings that must not import each other):

    cli
    server | bench        the assemblies the CLI starts (the S3 server, the benchmarks)
    reload                applies a changed config file to the running server's parts
    admin
    s3
    appkeys               the typed web app keys, below both s3/ and admin/ (issue 13)
    heal
    engine
    meta
    storage
    format | erasure
    obs
    config | errors | states  plain settings, the typed exceptions, and the states several
                          layers compare (s3free/states.py): import nothing of s3free

`s3free/__init__.py` (the package itself: only `__version__`) is below everything; the test
checks that it imports nothing. Imports under `if TYPE_CHECKING:` count for the layers (a type
from above is still a dependency on it) but not for cycles (they never run). Imports inside
functions count for both: a lazy import hides a cycle from Python, not from the design.

The layers are checked by import-linter (its layers contract also follows indirect chains),
the cycles by strongly connected components of grimp's module graph (import-linter's engine).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

PACKAGE = "s3free"
LAYERS = [
    "cli",
    "server | bench",
    "reload",
    "admin",
    "s3",
    "appkeys",
    "heal",
    "engine",
    "meta",
    "storage",
    "format | erasure",
    "obs",
    "config | errors | states",
]

# Known violations, to be removed by the change that lists them. Each entry must still exist (fails
# when one is gone, so the lists never outlive what they excuse).
ALLOWED_UPWARD: set[tuple[str, str]] = set()  # (importer, imported): none left
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()  # none left


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """Every import, those under `if TYPE_CHECKING:` included."""
    return grimp.build_graph(PACKAGE, cache_dir=None)


@pytest.fixture(scope="module")
def runtime_graph() -> grimp.ImportGraph:
    """Imports that run (any scope), without those under `if TYPE_CHECKING:`."""
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True, cache_dir=None)


def test_imports_point_down_the_layers(graph: grimp.ImportGraph, tmp_path: Path) -> None:
    gone = sorted(
        (a, b) for a, b in ALLOWED_UPWARD if not graph.direct_import_exists(importer=a, imported=b)
    )
    assert not gone, f"allowed upward imports no longer exist; remove from ALLOWED_UPWARD: {gone}"
    config = tmp_path / "importlinter.ini"
    config.write_text(_contract_ini())
    configuration.configure()  # what the lint-imports command does first
    kept = lint_imports(config_filename=str(config), cache_dir=None, no_logo=True)
    assert kept, "an import points up the layers: see the import-linter report above"


def test_no_import_cycles(runtime_graph: grimp.ImportGraph) -> None:
    edges = _edges(runtime_graph)
    for importer, imported in sorted(ALLOWED_CYCLE_EDGES):
        assert imported in edges.get(importer, set()), (
            f"{importer} -> {imported} no longer exists: remove it from ALLOWED_CYCLE_EDGES"
        )
        assert _reaches(edges, imported, importer), (
            f"{importer} -> {imported} no longer closes a cycle: remove it from ALLOWED_CYCLE_EDGES"
        )
    for importer, imported in ALLOWED_CYCLE_EDGES:
        edges[importer].discard(imported)
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert not cycles, "import cycles (each list imports itself back through others): " + (
        "; ".join(" <-> ".join(c) for c in cycles)
    )


def test_the_package_root_imports_nothing(graph: grimp.ImportGraph) -> None:
    """Every module may import `s3free` (for __version__): it must stay a leaf."""
    assert graph.find_modules_directly_imported_by(PACKAGE) == set()


def test_every_top_level_module_has_a_layer(graph: grimp.ImportGraph) -> None:
    """A new top-level module or package must be placed in LAYERS (else it is unchecked)."""
    named = {n.strip("() ") for layer in LAYERS for n in layer.split("|")}
    tops = {m.split(".")[1] for m in graph.find_children(PACKAGE)}
    assert tops - named == set(), f"place these in LAYERS: {sorted(tops - named)}"


def test_every_package_has_an_init() -> None:
    """A directory without __init__.py is a namespace package, which grimp (and so the
    contract) does not look into: its modules would go unchecked."""
    root = Path(__file__).resolve().parent.parent / PACKAGE
    bare = sorted(
        str(d.relative_to(root.parent))
        for d in [root, *root.rglob("*")]
        if d.is_dir() and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    )
    assert bare == [], f"add an __init__.py to: {bare}"


def _contract_ini() -> str:
    layers = "\n".join(f"    {layer}" for layer in LAYERS)
    ignores = "\n".join(f"    {a} -> {b}" for a, b in sorted(ALLOWED_UPWARD))
    return textwrap.dedent(
        """\
        [importlinter]
        root_package = {package}

        [importlinter:contract:layers]
        name = s3free layers: imports point down
        type = layers
        containers = {package}
        layers =
        {layers}
        ignore_imports =
        {ignores}
        """
    ).format(package=PACKAGE, layers=layers, ignores=ignores)


def _edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    modules = {m for m in graph.modules if m == PACKAGE or m.startswith(PACKAGE + ".")}
    return {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a deep import chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found
