"""The code's shape: layers one way, no private names across modules, SQL only in the ledger.

docs/architecture.md draws the layers; this test reads every module's imports (function-level
ones included) and holds the code to that drawing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "midvbatch"

# a module may import its own layer and the layers below, never one above
LAYERS = [
    ("errors", "fileio", "runfolder", "config", "geometry", "accelerators", "plugins", "version"),
    ("video",),
    ("dataset",),
    ("scoring",),
    ("pipeline", "decode"),
    ("engine", "results", "report"),
    ("ui",),
    ("cli", "__main__", "__init__", "api"),
]


def _layer(module: str) -> int:
    head = module.split(".")[1] if module.count(".") else "__init__"
    for rank, names in enumerate(LAYERS):
        if head in names:
            return rank
    raise AssertionError(f"{module} is in no layer of this test: add it to LAYERS (and to docs/architecture.md)")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name if name != "midvbatch" else "midvbatch.__init__"] = path
    return out


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("midvbatch"):
            yield node.module, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("midvbatch") or alias.name == "sqlite3":
                    yield alias.name, [], node.lineno


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_no_module_imports_a_layer_above_its_own(module):
    mine = _layer(module)
    for target, _, line in _imports(MODULES[module]):
        if target == "sqlite3" or target == "midvbatch":
            continue
        assert _layer(target) <= mine, f"{module}:{line} imports {target}, a layer above it"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_no_module_imports_the_package_top(module):
    """midvbatch/__init__.py serves users (the whole API, lazily): a module of the package reads nothing from it
    (__version__ comes from midvbatch.version), so the package's import order never matters."""
    for target, names, line in _imports(MODULES[module]):
        if target == "midvbatch":  # `from midvbatch import ...` or `import midvbatch`; a submodule is fine
            top = [n for n in names if f"midvbatch.{n}" not in MODULES] if names else ["midvbatch"]
            assert not top, f"{module}:{line} imports {', '.join(top)} from the package top: import its own module"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_no_private_names_across_modules(module):
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    for target, names, line in _imports(MODULES[module]):
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        # (a package's private submodule, `from midvbatch.report import _render`, serves that package)
        assert not private or target == package, f"{module}:{line} imports private {private} from {target}"
        if any(part.startswith("_") for part in target.split(".")[1:]):
            # a private module (video._open) serves its own package only, the packages inside it included
            # (dataset.formats._walk serves dataset.formats.midv)
            owner = target.rsplit(".", 1)[0]
            assert package == owner or package.startswith(f"{owner}."), (
                f"{module}:{line} imports the private module {target}"
            )


def _imports_rich(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rich":
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "rich" for a in node.names):
            return True
    return False


def test_layers_presentation_only_above_the_library():
    """No module under engine/, dataset/, pipeline/, video/ imports rich: they hand data to what the cli passes."""
    users = sorted(name for name, path in MODULES.items() if _imports_rich(path))
    library = [name for name in users if name.split(".")[1] in ("engine", "dataset", "pipeline", "video")]
    assert not library, f"{library} import rich: draw in midvbatch.ui, pass a progress object or handler down"
    assert users, "the test no longer sees any rich import (is the check broken?)"


def test_layers_sql_only_in_the_ledger():
    users = sorted(
        name
        for name, path in MODULES.items()
        if any(t == "sqlite3" for t, _, _ in _imports(path)) or ".db.execute(" in path.read_text()
    )
    assert users == ["midvbatch.engine.ledger"], users


def _graph() -> dict[str, set[str]]:
    """Module -> the midvbatch modules it imports (a name that is a submodule counts as that module)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, set())
        for target, names, _ in _imports(path):
            if target == "sqlite3":
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            edges.update(subs or ([target] if target in MODULES else []))
        edges.discard(module)
    return graph


def test_layers_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def _architecture_rows() -> dict[str, str]:
    """docs/architecture.md's module table: each module or package named in a row's first cell -> the row's text."""
    rows: dict[str, str] = {}
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    for line in text.splitlines():
        if line.startswith("| `"):
            first, _, concern = line[2:].partition(" | ")
            for name in re.findall(r"`([^`]+)`", first):
                rows[name] = concern
    return rows


def _named_in(inside: Path, concern: str) -> bool:
    """Whether a package's row names one of its modules: `state.py`; in a package of its own, `midv/` and `layout.py`."""
    if len(inside.parts) == 1:
        return f"`{inside.name}`" in concern or f"{inside.name}:" in concern
    return f"`{inside.parts[0]}/`" in concern and (inside.name == "__init__.py" or f"`{inside.name}`" in concern)


def test_layers_every_module_is_in_the_architecture_table():
    """docs/architecture.md's table names every module: in a row of its own, or by its file name in the row of
    its package (`engine/run/`); a package's __init__.py is its package's row."""
    rows = _architecture_rows()
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative in rows:
            continue
        package = path.parent.relative_to(SRC).as_posix() + "/"
        if path.name == "__init__.py" and (package in rows or SRC in (path.parent, path.parent.parent)):
            continue  # (a layer's package: the drawing names it)
        if any(
            _named_in(path.relative_to(SRC / p), rows[p]) for p in rows if p.endswith("/") and relative.startswith(p)
        ):
            continue
        missing.append(relative)
    assert not missing, f"docs/architecture.md's module table does not name: {', '.join(missing)}"
