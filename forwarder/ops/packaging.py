"""Build the forwarder Lambda's deployment zip: ``othermail aws package-forwarder``.

The zip holds what ``forwarder.hosts.lambda_handler`` imports and nothing else:

* the project's own modules, found by tracing the handler's imports with ``modulefinder`` (which
  reads every ``import`` statement, those inside functions too) over the project's packages only:
  no CLI, no web app, no one-box server, no migrations, no samples;
* the third-party distributions those imports need (SQLAlchemy; cryptography, which seals contacts'
  addresses) and the database drivers
  SQLAlchemy loads by URL (PyMySQL, psycopg with its binary libpq), installed with
  ``pip install --target --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11
  --implementation cp``: wheels that run on Lambda's python3.11 runtime (Amazon Linux 2), whatever
  machine builds the zip. Versions are pinned to the ones installed here, so Lambda runs what the
  tests ran;
* not boto3/botocore: Lambda's Python runtime provides them.

A traced import outside ``ALLOWED`` or an unknown third-party import stops the build with the
module that made it, so a new dependency is a decision, not an accident. Byte code is compiled
with ``--invalidation-mode unchecked-hash`` (Lambda's disk is read-only, so Python could not cache
it there, and zip timestamps would make checked byte code stale); entries are sorted and dated
1980-01-01, so the same inputs give the same zip.
"""

from __future__ import annotations

import compileall
import importlib.metadata
import modulefinder
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from forwarder.errors import PackagingError

HANDLER = "forwarder.hosts.lambda_handler"
#: The project's top-level packages (what the trace follows).
FIRST_PARTY = ("forwarder", "models", "migrations", "web")
#: First-party packages the Lambda may carry; a traced import of anything else is an error.
ALLOWED = ("forwarder", "models")
NEVER = ("forwarder.cli", "forwarder.samples", "web", "migrations")
#: The one box's own parts, which forwarder/runtime.py builds on first use only (``Runtime.spool``,
#: ``Runtime.authenticator``): the Lambda never asks for them, so the trace does not follow the
#: runtime's deferred imports into them and the zip does not carry them (nor dkimpy and pyspf).
ONE_BOX_ONLY = (
    "forwarder.adapters.inbound_auth",
    "forwarder.adapters.local",
    "forwarder.adapters.smtp.ingress",
    "forwarder.adapters.smtp.server",
    "forwarder.adapters.smtp.tls",
)
#: Third-party top-level imports the handler may make: the distribution to install, or None when
#: Lambda's Python runtime provides it.
THIRD_PARTY: dict[str, str | None] = {
    "sqlalchemy": "sqlalchemy",
    "cryptography": "cryptography",
    "boto3": None,
    "botocore": None,
}
#: Database drivers SQLAlchemy imports by URL scheme (not visible to the trace).
DRIVERS: dict[str, str] = {"mysql": "pymysql", "postgres": "psycopg[binary]"}
#: Distributions that must never end up in the zip, whatever pulls them in.
FORBIDDEN_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "flask", "werkzeug", "jinja2", "click")
PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.11"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class Trace:
    """What the handler imports: project files (relative paths) and third-party top-level names,
    each with the project modules that import it."""

    files: list[Path]
    modules: list[str]
    third_party: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Built:
    path: Path
    size: int
    modules: list[str]
    distributions: list[str]


def project_root() -> Path:
    """The folder that holds the ``forwarder`` package (the work tree, or site-packages)."""
    import forwarder

    return Path(forwarder.__file__).resolve().parent.parent


def _within(name: str, packages: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def trace_handler(root: Path | None = None, entry: str = HANDLER) -> Trace:
    """Trace ``entry``'s imports over the project's own packages (nothing else is on the path)."""
    root = root or project_root()
    with tempfile.TemporaryDirectory(prefix="othermail-trace-") as scratch:
        for package in FIRST_PARTY:  # a path with the project's packages and nothing else
            if (root / package / "__init__.py").is_file():
                (Path(scratch) / package).symlink_to(root / package, target_is_directory=True)
        finder = modulefinder.ModuleFinder(path=[scratch], excludes=list(ONE_BOX_ONLY))
        finder.import_hook(entry)
        modules: dict[str, Path] = {}
        for name, module in finder.modules.items():
            file = getattr(module, "__file__", None)  # modulefinder.Module is untyped
            if file and _within(name, FIRST_PARTY):
                modules[name] = Path(file).relative_to(scratch)
        third_party: dict[str, set[str]] = {}
        for missing, importer_counts in finder.badmodules.items():
            top = missing.split(".")[0]
            if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
                continue  # ``from package import name`` probes; the standard library
            third_party.setdefault(top, set()).update(importer_counts)
    for name in sorted(modules):
        if not _within(name, ALLOWED) or _within(name, NEVER):
            raise PackagingError(
                f"the Lambda handler's imports reach {name}, which the forwarder zip must not carry "
                f"(allowed: {', '.join(ALLOWED)}; never: {', '.join(NEVER)})"
            )
    for name, importers in sorted(third_party.items()):
        if name not in THIRD_PARTY:
            raise PackagingError(
                f"{', '.join(sorted(importers))} import {name}, a third-party package the forwarder zip does not "
                f"know: add it to THIRD_PARTY in forwarder/ops/packaging.py (and pyproject) or drop the import"
            )
    files = sorted({path for path in modules.values()})
    return Trace(files=files, modules=sorted(modules), third_party=third_party)


def _declared() -> dict[str, str]:
    """othermail's own requirement for each distribution (``psycopg[binary]>=3.1``), by name."""
    try:
        requires = importlib.metadata.requires("othermail") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    declared: dict[str, str] = {}
    for line in requires:
        spec = line.split(";")[0].strip()
        match = re.match(r"[A-Za-z0-9._-]+", spec)
        if match:
            declared.setdefault(match.group(0).lower(), spec)
    return declared


def requirements(trace: Trace, drivers: Iterable[str]) -> list[str]:
    """Pinned requirements: the version installed here when there is one, else othermail's own."""
    wanted = sorted({d for name in trace.third_party if (d := THIRD_PARTY[name])} | {DRIVERS[d] for d in drivers})
    declared = _declared()
    pinned = []
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)  # type: ignore[union-attr]  # every requirement line starts with a name
        extras = requirement[len(name) :]
        try:
            pinned.append(f"{name}{extras}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(declared.get(name.lower(), requirement))
    return pinned


def install(requirements: list[str], target: Path) -> list[str]:
    """Install Lambda-compatible wheels of ``requirements`` into ``target``; the distributions."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--platform",
        PLATFORM,
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"pip could not install {' '.join(requirements)} for Lambda:\n{result.stderr.strip()}")
    shutil.rmtree(target / "bin", ignore_errors=True)
    installed = sorted(p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info"))
    wrong = [d for d in installed if re.split(r"-\d", d)[0].lower().replace("_", "-") in FORBIDDEN_DISTRIBUTIONS]
    if wrong:
        raise PackagingError(f"{', '.join(wrong)} would land in the forwarder zip; something requires it")
    return installed


def _write_zip(build: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for path in sorted(p for p in build.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(build).as_posix(), date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(info, path.read_bytes())
    partial.replace(output)


def build_forwarder_zip(
    output: Path,
    drivers: Iterable[str] = ("mysql", "postgres"),
    compile_bytecode: bool = True,
    root: Path | None = None,
) -> Built:
    """Trace, install, compile and zip; returns what was built."""
    root = root or project_root()
    drivers = list(dict.fromkeys(drivers))
    unknown = [d for d in drivers if d not in DRIVERS]
    if unknown:
        raise PackagingError(f"unknown database driver {', '.join(unknown)} (choose from {', '.join(DRIVERS)})")
    trace = trace_handler(root)
    with tempfile.TemporaryDirectory(prefix="othermail-forwarder-zip-") as scratch:
        build = Path(scratch) / "build"
        build.mkdir()
        distributions = install(requirements(trace, drivers), build)
        for relative in trace.files:
            (build / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / relative, build / relative)
        if compile_bytecode and sys.version_info[:2] == tuple(int(p) for p in PYTHON_VERSION.split(".")):
            compileall.compile_dir(
                build, quiet=2, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
            )
        _write_zip(build, output)
    return Built(path=output, size=output.stat().st_size, modules=trace.modules, distributions=distributions)
