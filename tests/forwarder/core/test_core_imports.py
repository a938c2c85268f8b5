"""forwarder.core is standard library only: importing it pulls in no adapter dependency."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import forwarder.core

CORE_DIR = Path(forwarder.core.__file__).parent
FORBIDDEN = (
    "boto3",
    "botocore",
    "flask",
    "sqlalchemy",
    "aiosmtpd",
    "models",
    "alembic",
    "moto",
    "dns",
    "forwarder.adapters",
    "forwarder.hosts",
    "forwarder.ops",
    "forwarder.cli",
)


def test_import_in_a_fresh_interpreter_loads_no_adapter() -> None:
    code = "import json, sys\nimport forwarder.core\nprint(json.dumps(sorted(sys.modules)))\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=CORE_DIR.parent.parent
    )
    loaded = set(json.loads(completed.stdout))
    assert "forwarder.core.forward" in loaded  # the probe really imported the package
    leaked = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert leaked == []


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}:{node.lineno}: use absolute imports"
            assert node.module is not None
            found.append((node.module, node.lineno))
    return found


def test_every_core_import_is_stdlib_or_core() -> None:
    sources = sorted(CORE_DIR.glob("*.py"))
    assert {p.name for p in sources} >= {
        "message.py",
        "headers.py",
        "text.py",
        "addresses.py",
        "body.py",
        "validator.py",
        "decide.py",
        "forward.py",
        "outcomes.py",
    }
    offenders = []
    for path in sources:
        for module, line in _imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if module == "forwarder.core" or module.startswith("forwarder.core."):
                continue
            offenders.append(f"{path.name}:{line}: {module}")
    assert offenders == []


def test_the_static_check_catches_a_third_party_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom sqlalchemy import orm\nimport forwarder.hosts\n", encoding="utf-8")
    modules = [m for m, _ in _imports(probe)]
    assert modules == ["os", "sqlalchemy", "forwarder.hosts"]
    assert "sqlalchemy" not in sys.stdlib_module_names
