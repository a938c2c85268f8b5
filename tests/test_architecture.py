"""The layout's rules, read from the source with ast (no module is imported).

- forwarder/core imports only the standard library (and itself);
- nothing under forwarder/ imports web/ (the CLI and the web app share forwarder/accounts);
- models/ imports neither Flask, nor web/, nor anything of forwarder/;
- web/services/ imports neither Flask nor web.db: a service gets its session, runtime and settings
  as arguments;
- no circle among module-level imports (imports inside functions and under
  ``if TYPE_CHECKING:`` run later or never, so they do not count for circles).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("forwarder", "models", "web", "migrations")
#: forwarder modules allowed to import web/, and why. The one box is the host that serves the
#: web app next to the forwarder, so it builds it; nothing else may.
WEB_IMPORT_ALLOWED = {"forwarder.hosts.onebox": "the one box host serves the web app"}


@dataclass(frozen=True)
class Import:
    target: str  # the dotted name as written (resolved if relative)
    module_level: bool  # at module level and outside ``if TYPE_CHECKING:``
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, module_level, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append(Import(base, module_level, child.lineno))
                # ``from package import module`` imports the submodule
                found.extend(Import(f"{base}.{alias.name}", module_level, child.lineno) for alias in child.names)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                visit(child, False)
            else:
                visit(child, module_level)

    visit(tree, True)
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


MODULES = _modules()
IMPORTS = {name: _imports(path, name) for name, path in MODULES.items()}


def _project_module(target: str) -> str | None:
    """The project module ``target`` names (its longest dotted prefix that is one), or None."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in MODULES:
            return name
        parts.pop()
    return None


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_every_package_is_parsed() -> None:
    for package in PACKAGES:
        assert package in MODULES
    assert len(MODULES) > 100


def test_forwarder_core_imports_only_the_standard_library() -> None:
    wrong = [
        f"{module}:{found.line} imports {found.target}"
        for module, imports in IMPORTS.items()
        if _within(module, "forwarder.core")
        for found in imports
        if found.target.split(".")[0] not in sys.stdlib_module_names and not _within(found.target, "forwarder.core")
    ]
    assert wrong == []


def test_nothing_under_forwarder_imports_web() -> None:
    wrong = [
        f"{module}:{found.line} imports {found.target}"
        for module, imports in IMPORTS.items()
        if _within(module, "forwarder") and module not in WEB_IMPORT_ALLOWED
        for found in imports
        if _within(found.target, "web")
    ]
    assert wrong == []


def test_models_import_neither_flask_nor_web_nor_forwarder() -> None:
    wrong = [
        f"{module}:{found.line} imports {found.target}"
        for module, imports in IMPORTS.items()
        if _within(module, "models")
        for found in imports
        if any(_within(found.target, banned) for banned in ("flask", "web", "forwarder"))
    ]
    assert wrong == []


def test_services_import_no_flask() -> None:
    """The services take what they need as arguments (web/services/context.py); the views read
    the request and the app. ``from flask import current_app`` is an import of ``flask.current_app``,
    and web.db is the views' way to the request's session."""
    services = [module for module in IMPORTS if _within(module, "web.services")]
    assert "web.services.domains" in services
    wrong = [
        f"{module}:{found.line} imports {found.target}"
        for module in services
        for found in IMPORTS[module]
        if _within(found.target, "flask") or _within(found.target, "web.db")
    ]
    assert wrong == []


def _graph(*, module_level_only: bool, within: str = "") -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, imports in IMPORTS.items():
        if within and not _within(module, within):
            continue
        targets = {_project_module(found.target) for found in imports if found.module_level or not module_level_only}
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str]:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(error.args[1])
    return []


def test_no_import_circles() -> None:
    graph = _graph(module_level_only=True)
    assert graph["forwarder.flows.forward"]  # the graph has edges: the check below could fail
    assert _circle(graph) == []


def test_no_import_circles_in_forwarder_even_for_types_or_inside_functions() -> None:
    """forwarder/ is stricter: not even an import for type hints or a deferred one goes round
    (models/ needs them for relationships both ways; web/'s app factory imports its views late)."""
    assert _circle(_graph(module_level_only=False, within="forwarder")) == []


def test_the_circle_check_sees_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        assert set(error.args[1]) == {"a", "b", "c"}
    else:
        raise AssertionError("no circle found")
