"""MkDocs hooks (mkdocs.yml, ``hooks:``): the pages that have one source in the code.

- The configuration reference is generated from the metadata of ``Settings``' fields (each
  field's variables, default and description, ``forwarder.settings.documented``) into
  docs/configuration.md, where the page has ``MARKER``. The build stops when a field has no
  metadata, when a variable ``Settings.from_env`` reads has no row, when a row names a variable
  nothing reads, or when a row's default is not the one ``Settings`` takes (setting a variable to
  its documented default must change nothing); each ``OTHERMAIL_WEB_*`` the page names must be a
  key web/ reads. tests/docs/ runs the same checks.
- The API reference is generated from ``web.api.openapi.document()``, the document the API
  serves and validates against: ``api/openapi.json`` as served, and ``api.md``, one section per
  route. Nothing here fetches anything, so the build works offline.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PREFIX = "OTHERMAIL_"
CONFIGURATION = ROOT / "docs" / "configuration.md"
#: Where the generated settings table goes in docs/configuration.md.
MARKER = "<!-- settings: generated from forwarder/settings.py by docs/hooks.py -->"


class _Recording(Mapping[str, str]):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_variables() -> set[str]:
    """Every OTHERMAIL_* variable ``Settings.from_env`` reads, found by asking it."""
    from forwarder.settings import Settings

    env = _Recording()
    Settings.from_env(env)
    return {name for name in env.asked if name.startswith(PREFIX)}


def reference_rows() -> list[Any]:
    """The rows of the settings reference (``forwarder.settings.Documented``), in field order, then
    the variables read before Settings."""
    from dataclasses import fields

    from forwarder.settings import READ_BEFORE_SETTINGS, Settings

    rows = [row for item in fields(Settings) for row in item.metadata.get("documented", ())]
    return rows + list(READ_BEFORE_SETTINGS)


def field_problems(cls: Any = None) -> list[str]:
    """Each field of ``Settings`` (or dataclass ``cls``) has reference rows or names the field whose row covers it."""
    from dataclasses import fields

    from forwarder.settings import Settings

    cls = Settings if cls is None else cls
    names = {item.name for item in fields(cls)}
    problems = []
    for item in fields(cls):
        if item.metadata.get("documented_with") in names:
            continue
        rows = item.metadata.get("documented", ())
        if not rows or not all(row.env and row.doc.strip() for row in rows):
            problems.append(f"{cls.__name__}.{item.name}: no documented(row(...)) metadata with a description")
    return problems


def configuration_markdown(rows: list[Any] | None = None) -> str:
    """The settings table that replaces ``MARKER`` in docs/configuration.md."""
    out = ["| variable | default | meaning |", "|---|---|---|"]
    for row in reference_rows() if rows is None else rows:
        names = " / ".join(f"`{name}`" for name in row.env)
        out.append(f"| {names} | {_cell(row.default)} | {_cell(row.doc)} |")
    return "\n".join(out) + "\n"


def configuration_problems(rows: list[Any] | None = None) -> list[str]:
    """What differs between the reference rows and what ``Settings.from_env`` reads and defaults to."""
    from forwarder.errors import SettingsError
    from forwarder.settings import READ_BEFORE_SETTINGS, Settings

    rows = reference_rows() if rows is None else rows
    before = {name for row in READ_BEFORE_SETTINGS for name in row.env}
    documented = [name for row in rows for name in row.env]
    read = settings_variables()
    problems = [
        f"{name}: read by Settings.from_env, not documented in Settings' field metadata"
        for name in sorted(read - set(documented))
    ]
    problems += [
        f"{name}: documented, but Settings.from_env does not read it"
        for name in documented
        if name not in read and name not in before
    ]
    problems += [f"{name}: documented twice" for name in sorted({n for n in documented if documented.count(n) > 1})]
    baseline = Settings.from_env({})
    for row in rows:
        names, cell = row.env, row.default
        if cell.startswith("(none"):
            defaults = [""] * len(names)
        else:
            defaults = re.findall(r"`([^`]*)`", cell)
        if len(defaults) != len(names) or any("<" in value or PREFIX in value for value in defaults):
            continue  # a default described in words (another variable, the data folder, the mode)
        for name, value in zip(names, defaults):
            if name in before or name not in read:
                continue
            try:
                differs = Settings.from_env({name: value}) != baseline
            except SettingsError as exc:
                problems.append(f"{name}: documented default {value!r} is refused: {exc}")
                continue
            if differs:
                problems.append(f"{name}: documented default {value!r} is not the default of Settings")
    return problems


def web_setting_problems(text: str | None = None) -> list[str]:
    """Each ``OTHERMAIL_WEB_<KEY>`` the page names must be a key some module of web/ reads (the web
    app takes them through Flask's ``from_prefixed_env``, so its keys have no one class)."""
    text = CONFIGURATION.read_text() if text is None else text
    sources = "\n".join(path.read_text() for path in (ROOT / "web").rglob("*.py"))
    problems = []
    for key in sorted(set(re.findall(r"OTHERMAIL_WEB_([A-Z][A-Z0-9_]*)", text))):
        if f'"{key}"' not in sources and f"'{key}'" not in sources:
            problems.append(f"OTHERMAIL_WEB_{key}: documented, but no module of web/ reads the key {key}")
    return problems


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _schema_text(schema: Mapping[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#{name.lower()})"
    return f"`{_cell(json.dumps(schema, sort_keys=True))}`"


def api_markdown(document: Mapping[str, Any]) -> str:
    """The API reference page: every route and schema of the OpenAPI document."""
    info = document["info"]
    out = [
        "# API reference",
        "",
        f"{info['title']} {info['version']}, OpenAPI {document['openapi']}. This page is generated when the",
        "site is built from `web.api.openapi.document()`, the same document the API serves at",
        "`/api/v1/openapi.json` and validates its requests and responses against; the document itself",
        "is [openapi.json](api/openapi.json). Authentication: `Authorization: Bearer om_...` (a",
        "personal API token; `othermail token create`, or the account page). Errors are JSON",
        '`{"error": {"code": "...", "message": "..."}}`.',
        "",
    ]
    if info.get("description"):
        out += [info["description"], ""]
    base = (document.get("servers") or [{"url": ""}])[0]["url"]
    out += ["## Routes", "", "| method | path | summary |", "|---|---|---|"]
    operations = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                operations.append((path, method, operation))
                anchor = operation.get("operationId", f"{method}-{path}").lower()
                out.append(
                    f"| `{method.upper()}` | `{base}{path}` | [{_cell(operation.get('summary', ''))}](#{anchor}) |"
                )
    out.append("")
    for path, method, operation in operations:
        anchor = operation.get("operationId", f"{method}-{path}").lower()
        out += [f"### {operation.get('summary') or anchor} {{#{anchor}}}", "", f"`{method.upper()} {base}{path}`", ""]
        if operation.get("description"):
            out += [operation["description"], ""]
        parameters = list(item_parameters(document, path)) + list(operation.get("parameters", []))
        if parameters:
            out += ["| parameter | in | required | schema | description |", "|---|---|---|---|---|"]
            for parameter in parameters:
                out.append(
                    f"| `{parameter['name']}` | {parameter['in']} | {'yes' if parameter.get('required') else 'no'} "
                    f"| {_schema_text(parameter.get('schema'))} | {_cell(parameter.get('description', ''))} |"
                )
            out.append("")
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            out += [f"Request body: {_schema_text(body)}", ""]
        out += ["| status | description | body |", "|---|---|---|"]
        for status, response in operation.get("responses", {}).items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            out.append(f"| {status} | {_cell(response.get('description', ''))} | {_schema_text(schema)} |")
        out.append("")
    out += ["## Schemas", ""]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        out += [
            f"### {name} {{#{name.lower()}}}",
            "",
            "```json",
            json.dumps(schema, indent=2, sort_keys=True),
            "```",
            "",
        ]
    return "\n".join(out)


def item_parameters(document: Mapping[str, Any], path: str) -> list[Mapping[str, Any]]:
    return list(document["paths"][path].get("parameters", []))


# MkDocs events ---------------------------------------------------------------------------------


def on_pre_build(config: Any) -> None:
    from mkdocs.exceptions import PluginError

    problems = field_problems() + configuration_problems() + web_setting_problems()
    if MARKER not in CONFIGURATION.read_text():
        problems.append(f"docs/configuration.md has no {MARKER} for the settings table")
    if problems:
        raise PluginError(
            "the configuration reference disagrees with forwarder.settings.Settings:\n  " + "\n  ".join(problems)
        )


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "configuration.md":
        return markdown.replace(MARKER, configuration_markdown())
    return markdown


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    from web.api.openapi import document

    spec = document()
    files.append(File.generated(config, "api/openapi.json", content=json.dumps(spec, indent=2, sort_keys=True) + "\n"))
    files.append(File.generated(config, "api.md", content=api_markdown(spec)))
    return files
