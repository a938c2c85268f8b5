"""Dependencies: every one has a floor above its known vulnerabilities, those whose internals the
code uses have a ceiling, and constraints.txt pins every one of them (what `make test` and CI
install from; `make lock` regenerates it) (issue 12, item 28)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONSTRAINTS = ROOT / "constraints.txt"

#: The first release with the fix of each advisory the floors must clear (declared or pinned).
FIXED_IN = {
    "aiosmtpd": ("1.4.6", "CVE-2024-27305 (1.4.5), CVE-2024-34083 (1.4.6)"),
    "dnspython": ("2.6.1", "CVE-2023-29483"),
    "flask": ("3.1.3", "CVE-2025-47278 (3.1.1), GHSA-68rp-wp8r-4726 (3.1.3)"),
    "werkzeug": (
        "3.1.6",
        "CVE-2024-49767 (3.0.6), CVE-2025-66221 (3.1.4), CVE-2026-21860 (3.1.5), CVE-2026-27199 (3.1.6)",
    ),
    "jinja2": ("3.1.6", "CVE-2024-56201, CVE-2024-56326 (3.1.5), CVE-2025-27516 (3.1.6)"),
    "cryptography": (
        "50.0.0",
        "CVE-2026-26007 (46.0.5), CVE-2026-34073 (46.0.6), CVE-2026-39892 (46.0.7), CVE-2026-69247 (50.0.0)",
    ),
    "pymysql": ("1.1.1", "CVE-2024-36039"),
    # transitive (botocore, moto, zappa): pinned in constraints.txt only
    "urllib3": ("2.7.0", "CVE-2025-66418, CVE-2025-66471 (2.6.0), CVE-2026-21441 (2.6.3), GHSA-mf9v-mfxr-j63j (2.7.0)"),
    "requests": ("2.33.0", "CVE-2024-47081 (2.32.4), CVE-2026-25645 (2.33.0)"),
}

#: Dependencies whose internals the code uses, and the ceiling that keeps them to tested releases.
CEILINGS = {
    # aiosmtpd: forwarder/adapters/smtp/server.py FastSMTP: SMTP._handle_client, _getaddr, _call_handler_hook...
    "aiosmtpd": "1.5",
    # werkzeug: forwarder/hosts/onebox.py: werkzeug.serving.make_server(fd=), get_sockaddr, select_address_family
    "werkzeug": "4",
    "dkimpy": "2",  # forwarder/adapters/inbound_auth/checks.py: dkim.util.parse_tag_value
}


def requirements() -> list[Requirement]:
    listed = list(PROJECT["project"]["dependencies"])
    for extra in PROJECT["project"]["optional-dependencies"].values():
        listed += extra
    return [Requirement(line) for line in listed]


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
            assert match, f"constraints.txt: {line!r} is not name==version"
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def floor(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=", ">")]
    return max(bounds) if bounds else None


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_every_dependency_has_a_floor(requirement: Requirement) -> None:
    assert floor(requirement) is not None, f"{requirement} has no lower bound"


def test_the_floors_clear_the_known_vulnerabilities() -> None:
    declared = {canonicalize_name(r.name): r for r in requirements()}
    assert "aiosmtpd" in declared and "werkzeug" in declared and "jinja2" in declared
    for name, (fixed, advisories) in FIXED_IN.items():
        if name in declared:
            lowest = floor(declared[name])
            assert lowest is not None and lowest >= Version(fixed), f"{declared[name]} admits {advisories}"


def test_dependencies_used_by_their_internals_have_a_ceiling() -> None:
    declared = {canonicalize_name(r.name): r for r in requirements()}
    for name, ceiling in CEILINGS.items():
        assert name in declared, name
        specifier = declared[name].specifier
        assert not specifier.contains(ceiling), f"{declared[name]} admits {ceiling}, whose internals are untested"
        assert any(s.operator in ("<", "<=", "==", "~=") for s in specifier)


def test_constraints_pin_every_dependency_within_its_bounds_and_above_the_advisories() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in constraints.txt (make lock)"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]} outside {requirement}"
        )
    for name, (fixed, advisories) in FIXED_IN.items():
        if name in pinned:
            assert pinned[name] >= Version(fixed), f"constraints.txt pins {name}=={pinned[name]}: {advisories}"
    assert "urllib3" in pinned and "werkzeug" in pinned  # the transitive ones are there too


def test_the_venv_is_built_from_the_constraints_and_make_lock_regenerates_them() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = [
        line for line in makefile.splitlines() if "pip install" in line and "-e '." in line and "--dry-run" not in line
    ]
    assert install and all("-c constraints.txt" in line or "-c $(CONSTRAINTS)" in line for line in install), install
    assert re.search(r"^lock:", makefile, re.MULTILINE)
