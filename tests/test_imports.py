"""The import graph of ``src/chronoseal``, read with ``ast``: no package reaches into another
package's private modules or names, and no module imports itself round a cycle.

A package is a component (``chronoseal.ledger``, ``chronoseal.node``, …): its ``_x`` modules
and ``_names`` are its own, and what other packages need it exports from its
``__init__.py``. The top-level helpers (``chronoseal._decode``, ``_hex``, ``_lazy``) belong
to the distribution itself, the parent of every component. Imports under ``if
TYPE_CHECKING:`` are not run and do not count for cycles; function-level imports do (they
only hide a cycle from the interpreter).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "chronoseal"


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module, dotted
    target: str  # the module imported (a name imported from a module counts as the module)
    name: str | None  # the name imported from ``target``, if any
    line: int
    typing_only: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(importer: str, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _typing_only_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def imports() -> Iterator[Import]:
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        typing_only = _typing_only_lines(tree)
        for node in ast.walk(tree):
            hidden = getattr(node, "lineno", 0) in typing_only
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("chronoseal"):
                        yield Import(module, alias.name, None, node.lineno, hidden)
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node.level, node.module)
                if not source.startswith("chronoseal"):
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in MODULES:  # ``from package import module``
                        yield Import(module, sub, None, node.lineno, hidden)
                    else:
                        yield Import(module, source, alias.name, node.lineno, hidden)


def _package(module: str) -> str:
    """The component a module belongs to: ``chronoseal.ledger._types`` → ``ledger``; the
    top-level modules belong to the distribution itself (``""``)."""
    parts = module.split(".")
    if len(parts) >= 2 and (len(parts) > 2 or _is_package(module)):
        return parts[1]
    return ""


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _private_crossing(imp: Import) -> bool:
    owner = _package(imp.target)
    if owner in ("", _package(imp.importer)):
        return False
    inside = imp.target.split(".")[2:]
    return any(map(_private, inside)) or (imp.name is not None and _private(imp.name))


def test_no_package_imports_another_packages_private_modules_or_names() -> None:
    crossings = [
        f"{MODULES[i.importer].relative_to(SRC)}:{i.line}: {i.target}"
        + (f" import {i.name}" if i.name else "")
        for i in imports()
        if _private_crossing(i)
    ]
    assert crossings == [], "export these from the owning package's __init__.py"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return found


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in imports():
        if not i.typing_only and i.target in MODULES and i.target != i.importer:
            edges[i.importer].add(i.target)
    return edges


def test_no_module_imports_itself_round_a_cycle() -> None:
    assert _cycles(import_graph()) == []


def test_the_checks_can_fail() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    crossing = Import("chronoseal.gateway._gateway", "chronoseal.channel._intake", None, 1, False)
    assert _private_crossing(crossing)
    name = Import("chronoseal.cli._demo", "chronoseal.cli._serve", "_endpoint", 1, False)
    assert not _private_crossing(name)  # within one package
    assert _private_crossing(Import("chronoseal.node._x", "chronoseal.ledger", "_t", 1, False))
    helper = Import("chronoseal.ledger._chain", "chronoseal._decode", None, 1, False)
    assert not _private_crossing(helper)
