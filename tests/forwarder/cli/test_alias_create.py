"""``othermail alias create`` without ``--destination``: the owner's verified destinations (issue 12.27)."""

from __future__ import annotations

from sqlalchemy import select

from models import Alias, Destination, User, alias_destinations
from tests.forwarder.cli.test_cli import DESTINATION, OWNER, Cli, app  # noqa: F401  (app: the fixture)


def test_without_destination_the_alias_forwards_to_the_owners_verified_destinations(app: Cli) -> None:  # noqa: F811
    first = app.create_alias()
    second = app.ok("alias", "create", "--owner", OWNER).stdout.strip()
    assert second != first and second.endswith("@othermail.example")
    rows = app.query(
        select(Alias.address, Destination.email)
        .join(alias_destinations, alias_destinations.c.alias_id == Alias.id)
        .join(Destination, Destination.id == alias_destinations.c.destination_id)
    )
    assert sorted(rows) == sorted([(first, DESTINATION), (second, DESTINATION)])


def test_without_destination_and_none_verified_it_is_one_clear_line(app: Cli) -> None:  # noqa: F811
    app.ok("db", "upgrade")
    result = app.run("alias", "create", "--owner", "nobody@example.org")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--destination" in lines[0] and "verified destination" in lines[0], result.output
    assert "Traceback" not in result.output
    assert app.query(select(Alias.id)) == [] and app.query(select(User.id)) == []
