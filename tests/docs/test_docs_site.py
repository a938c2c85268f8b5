"""The documentation keeps to its sources (issue 13): the configuration reference lists exactly the
variables ``Settings`` reads, with its defaults; the API reference is rendered from the OpenAPI
document the API serves; the README stays short and links only to pages that exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("othermail_docs_hooks", ROOT / "docs" / "hooks.py")
assert _spec and _spec.loader
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)


def test_every_setting_is_documented_with_its_default() -> None:
    assert hooks.configuration_problems() == []


def test_the_check_sees_a_missing_row_and_a_wrong_default() -> None:
    from dataclasses import replace

    rows = hooks.reference_rows()
    without_port = [row for row in rows if row.env != ("OTHERMAIL_SMTP_PORT",)]
    assert len(without_port) == len(rows) - 1
    assert any(
        p.startswith("OTHERMAIL_SMTP_PORT: read by Settings") for p in hooks.configuration_problems(without_port)
    )
    wrong = [replace(row, default="`15`") if row.env == ("OTHERMAIL_KEEP_DAYS",) else row for row in rows]
    assert hooks.configuration_problems(wrong) == [
        "OTHERMAIL_KEEP_DAYS: documented default '15' is not the default of Settings"
    ]


def test_settings_variables_are_found_by_asking_settings() -> None:
    found = hooks.settings_variables()
    assert {"OTHERMAIL_DATABASE_URL", "OTHERMAIL_SMTP_TARPIT_MAX_MS", "OTHERMAIL_LIMIT_USER_PER_DAY"} <= found
    assert all(name.startswith("OTHERMAIL_") for name in found)


def test_the_api_page_names_every_route_of_the_openapi_document() -> None:
    from web.api.openapi import document

    spec = document()
    page = hooks.api_markdown(spec)
    base = spec.get("servers", [{"url": ""}])[0]["url"]
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                assert f"| `{method.upper()}` | `{base}{path}` |" in page
    for name in spec["components"]["schemas"]:
        assert f"### {name} {{#{name.lower()}}}" in page


def test_the_readme_is_short_and_its_links_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links, "the README links to the documentation"
    for link in links:
        assert (ROOT / link).is_file(), link


def test_every_page_in_the_nav_exists() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.MULTILINE)
    assert "configuration.md" in pages and "architecture.md" in pages
    generated = {"api.md"}
    for page in pages:
        assert page in generated or (ROOT / "docs" / page).is_file(), page


def test_the_web_settings_named_are_read_by_the_web_app() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert hooks.web_setting_problems(text) == []
    made_up = text + "\n`OTHERMAIL_WEB_NO_SUCH_THING` (1) does nothing.\n"
    assert hooks.web_setting_problems(made_up) == [
        "OTHERMAIL_WEB_NO_SUCH_THING: documented, but no module of web/ reads the key NO_SUCH_THING"
    ]


def test_a_pipe_in_the_document_does_not_break_a_table() -> None:
    from web.api.openapi import document

    spec = document()
    operation = spec["paths"]["/aliases"]["get"]
    operation["summary"] = "one | two"
    page = hooks.api_markdown(spec)
    assert "[one \\| two](#" in page
