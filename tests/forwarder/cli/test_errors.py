"""Operator mistakes end the real ``othermail`` process with one line naming the option or the
variable and what is wrong, and a non-zero exit status: never a traceback (issue 12, item 21)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


class Othermail:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OTHERMAIL_")}
        self.env.update(
            {
                "OTHERMAIL_DATA_DIR": str(tmp_path / "var"),
                "OTHERMAIL_DOMAINS": "othermail.example",
                "PYTHONPATH": str(ROOT),
            }
        )

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "forwarder.cli.main", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


def one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The single line on standard error, checked to name each of ``names``."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def othermail(tmp_path: Path) -> Othermail:
    return Othermail(tmp_path)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_run_on_an_smtp_port_in_use_says_so_in_one_line(othermail: Othermail, busy_port: int) -> None:
    result = othermail("run", "--web-port", "0", "--smtp-port", str(busy_port))
    line = one_line_error(result, "OTHERMAIL_SMTP_PORT", "--smtp-port", f"127.0.0.1:{busy_port} is in use")
    assert result.stdout == ""  # nothing claimed to have started
    assert line.startswith("Error: ")


def test_smtp_on_a_port_in_use_names_its_own_option(othermail: Othermail, busy_port: int) -> None:
    result = othermail("smtp", "--port", str(busy_port))
    one_line_error(result, "OTHERMAIL_SMTP_PORT", "--port", f"127.0.0.1:{busy_port} is in use")


def test_run_on_a_web_port_in_use_says_so_in_one_line(othermail: Othermail, busy_port: int) -> None:
    result = othermail("run", "--web-port", str(busy_port), "--smtp-port", "0")
    one_line_error(result, "--web-port", f"127.0.0.1:{busy_port} is in use")


@pytest.mark.parametrize(
    "url, what",
    [
        ("not a url", "cannot be parsed"),
        ("foo://user:pw@host/db", "foo"),
        ("postgresql+nodriver://user@host/db", "nodriver"),
    ],
)
def test_a_malformed_database_url_names_the_variable(othermail: Othermail, url: str, what: str) -> None:
    result = othermail("db", "upgrade", OTHERMAIL_DATABASE_URL=url)
    line = one_line_error(result, "OTHERMAIL_DATABASE_URL", what)
    assert "pw" not in line  # never the password


@pytest.mark.parametrize("address", ["not an address", "x@@y.example", "a@", "me@exa mple.org"])
def test_forward_refuses_a_malformed_recipient(othermail: Othermail, address: str) -> None:
    message = othermail.tmp / "m.eml"
    message.write_bytes(b"Subject: hi\r\n\r\nhello\r\n")
    result = othermail("forward", "--recipient", address, str(message))
    one_line_error(result, "--recipient", "not an email address")


@pytest.mark.parametrize("option", ["--destination", "--owner"])
def test_alias_create_refuses_a_malformed_address(othermail: Othermail, option: str) -> None:
    args = {"--owner": "o@example.org", "--destination": "me@real.example", option: "not an address"}
    result = othermail("alias", "create", *(part for pair in args.items() for part in pair))
    one_line_error(result, option, "not an email address")
    assert not (othermail.tmp / "var" / "othermail.db").exists()  # refused before touching anything


def test_a_usage_error_is_one_line_too(othermail: Othermail) -> None:
    result = othermail("alias", "create", "--destination", "me@real.example")
    one_line_error(result, "--owner")


def test_a_database_without_its_tables_says_to_run_db_upgrade(othermail: Othermail) -> None:
    result = othermail("alias", "create", "--owner", "o@example.org", "--destination", "me@real.example")
    one_line_error(result, "no such table", "othermail db upgrade")
