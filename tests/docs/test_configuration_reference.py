"""The configuration reference has one source (issue 13): each field of ``Settings`` carries its
variables, default and description, and docs/hooks.py generates the page's table from them."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from forwarder.settings import READ_BEFORE_SETTINGS, Settings, documented, documented_with, row

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("othermail_docs_hooks_reference", ROOT / "docs" / "hooks.py")
assert _spec and _spec.loader
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)


class _Asked(dict[str, str]):
    """An empty environment that records every name ``from_env`` looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.append(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.asked.append(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self.asked.append(str(key))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())


def _read_by_from_env() -> set[str]:
    env = _Asked()
    Settings.from_env(env)
    return {name for name in env.asked if name.startswith("OTHERMAIL_")}


def _descriptions() -> dict[str, str]:
    """Variable -> description, from the fields' metadata."""
    found = {}
    for item in fields(Settings):
        for entry in item.metadata.get("documented", ()):
            for name in entry.env:
                found[name] = entry.doc
    return found


def test_every_variable_from_env_reads_has_a_description_next_to_its_field() -> None:
    read = _read_by_from_env()
    assert len(read) > 40 and "OTHERMAIL_SMTP_TLS_KEY" in read
    descriptions = _descriptions()
    assert sorted(name for name in read if not descriptions.get(name, "").strip()) == []


def test_every_field_is_documented_or_names_the_field_that_documents_it() -> None:
    assert hooks.field_problems() == []
    names = {item.name for item in fields(Settings)}
    for item in fields(Settings):
        assert item.metadata.get("documented") or item.metadata.get("documented_with") in names, item.name


def test_the_generated_table_names_every_variable_with_its_description() -> None:
    page = hooks.configuration_markdown()
    assert page.startswith("| variable | default | meaning |\n|---|---|---|\n")
    descriptions = _descriptions()
    for name in _read_by_from_env() | {name for entry in READ_BEFORE_SETTINGS for name in entry.env}:
        assert f"`{name}`" in page, name
    assert "| `OTHERMAIL_KEEP_DAYS` | `14` | days raw mail is kept" in page
    assert "| `OTHERMAIL_SMTP_TLS_CERT` / `OTHERMAIL_SMTP_TLS_KEY` | (none) |" in page
    assert descriptions["OTHERMAIL_RELAY_PASSWORD"] == "AUTH password"


def test_the_page_has_the_marker_and_the_hook_fills_it() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert text.count(hooks.MARKER) == 1
    assert "| `OTHERMAIL_" not in text, "the table is generated, not written by hand"

    class _Page:
        class file:
            src_uri = "configuration.md"

    rendered = hooks.on_page_markdown(text, page=_Page, config=None, files=None)
    assert hooks.MARKER not in rendered
    assert "| `OTHERMAIL_PUBLIC_URL` |" in rendered and "## Web app settings" in rendered


def test_a_field_without_a_description_is_reported() -> None:
    @dataclass(frozen=True)
    class Partial:
        cert: str = field(default="", metadata=documented(row("OTHERMAIL_X", default="(none)", doc="a file")))
        key: str = field(default="", metadata=documented_with("cert"))
        bare: int = 2
        blank: int = field(default=0, metadata=documented(row("OTHERMAIL_Y", default="`0`", doc=" ")))

    assert hooks.field_problems(Partial) == [
        "Partial.bare: no documented(row(...)) metadata with a description",
        "Partial.blank: no documented(row(...)) metadata with a description",
    ]
