"""One error hierarchy: every exception class othermail defines is declared in forwarder/errors.py,
under OthermailError, except the few named in ALLOWED (with the reason)."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import pytest

from forwarder import errors
from forwarder.errors import OthermailError

ROOT = Path(__file__).resolve().parents[2]
ERRORS = ROOT / "forwarder" / "errors.py"

#: ``module.Class``: why it is declared outside forwarder/errors.py.
ALLOWED = {
    "forwarder.core.body.Unrepairable": "forwarder/core imports only the standard library",
    "forwarder.cli.main.OneLineError": "a click.ClickException: how the CLI shows an error",
    "forwarder.cli.aws_provision.ProvisionError": "a click.ClickException: how the CLI shows an error",
}

#: Names moved to forwarder/errors.py that the modules they lived in still provide.
REEXPORTED = [
    ("forwarder.flows.replay", "NotAnEvent"),
    ("forwarder.ops.domain_checks", "SesError"),
    ("forwarder.ops.cost", "PricingError"),
    ("forwarder.ops.packaging", "PackagingError"),
    ("forwarder.adapters.inbound_auth.resolver", "DnsUnavailable"),
    ("forwarder.accounts.errors", "ServiceError"),
    ("forwarder.accounts", "AccountError"),
    ("web.services.errors", "ServiceError"),
    ("web.services.outbox", "NoOutbox"),
    ("web.api.common", "ApiError"),
    ("web.mailer", "MailNotSent"),
    ("web.mailer", "RecipientCapped"),
]


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _base_name(node.value)
    return ""


def _declared_in_errors() -> set[str]:
    tree = ast.parse(ERRORS.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def _is_builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def _looks_like_error(name: str, known: set[str]) -> bool:
    return name in known or _is_builtin_exception(name) or name.endswith(("Error", "Exception"))


def exception_classes_outside_errors() -> list[str]:
    """``module.Class`` of every class in forwarder/, web/ and models/ (outside forwarder/errors.py)
    whose base is, by its name, an exception: a builtin one, one of forwarder/errors.py, a name ending
    in Error or Exception, or another such class of the same module."""
    known = _declared_in_errors()
    found = []
    for package in ("forwarder", "web", "models"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ERRORS:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            classes = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.ClassDef)]
            local: set[str] = set()
            changed = True
            while changed:  # a class deriving from an error class of its own module is one too
                changed = False
                for node in classes:
                    if node.name not in local and any(
                        _looks_like_error(_base_name(base), known | local) for base in node.bases
                    ):
                        local.add(node.name)
                        changed = True
            found += [f"{module}.{name}" for name in sorted(local)]
    return found


def test_every_error_class_is_declared_in_forwarder_errors() -> None:
    stray = [name for name in exception_classes_outside_errors() if name not in ALLOWED]
    assert stray == [], f"declare these in forwarder/errors.py under OthermailError (or allow-list them): {stray}"


def test_the_allow_list_names_only_classes_that_exist() -> None:
    assert sorted(ALLOWED) == sorted(set(ALLOWED) & set(exception_classes_outside_errors()))


def test_every_error_in_forwarder_errors_is_an_othermail_error() -> None:
    declared = [getattr(errors, name) for name in _declared_in_errors()]
    assert len(declared) > 20
    assert [cls.__name__ for cls in declared if not issubclass(cls, OthermailError)] == []


def test_the_docstring_tree_names_every_error() -> None:
    named = set(re.findall(r"\b([A-Z]\w+)\b", errors.__doc__ or ""))
    assert sorted(_declared_in_errors() - named) == []


@pytest.mark.parametrize(("module", "name"), REEXPORTED)
def test_moved_errors_are_still_importable_where_they_were(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


@pytest.mark.parametrize("name", ["PricingError", "NotAnEvent", "AccountError", "ServiceError"])
def test_errors_callers_catch_as_value_error_still_are(name: str) -> None:
    assert issubclass(getattr(errors, name), ValueError)


def test_an_error_without_a_hint_reads_as_before() -> None:
    assert str(errors.AccountError("no such duration")) == "no such duration"
    assert str(errors.SesError("Throttling", "slow down")) == "Throttling: slow down"
