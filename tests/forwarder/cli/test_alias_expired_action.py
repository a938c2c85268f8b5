"""``othermail alias create --expired-action drop|reject`` (issue 12.19)."""

from __future__ import annotations

from sqlalchemy import select

from models import Alias
from tests.forwarder.cli.test_cli import DESTINATION, OWNER, Cli, app  # noqa: F401  (app: the fixture)


def test_expired_action_is_stored_and_drop_by_default(app: Cli) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    plain = app.ok("alias", "create", "--owner", OWNER, "--destination", DESTINATION).stdout.strip()
    rejecting = app.ok(
        "alias",
        "create",
        "--owner",
        OWNER,
        "--destination",
        DESTINATION,
        "--expires-in",
        "2h",
        "--expired-action",
        "reject",
    ).stdout.strip()
    stored = dict(app.query(select(Alias.address, Alias.expired_action)))
    assert stored == {plain: "drop", rejecting: "reject"}


def test_an_unknown_expired_action_is_one_clear_line(app: Cli) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    result = app.run("alias", "create", "--owner", OWNER, "--destination", DESTINATION, "--expired-action", "bounce")
    assert result.exit_code != 0 and "--expired-action" in result.output and "Traceback" not in result.output
    assert app.query(select(Alias.id)) == []


def test_the_help_says_what_each_choice_does(app: Cli) -> None:  # noqa: F811
    text = " ".join(app.ok("alias", "create", "--help").stdout.split())
    assert "--expired-action [drop|reject]" in text
    assert "SPF passed" in text and "DMARC" not in text and "550" in text
