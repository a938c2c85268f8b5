"""``othermail alias disable ADDRESS`` and ``alias enable ADDRESS``: the web app's switch
(``forwarder.accounts.set_alias_enabled``), one sentence each, and the forwarder's outcome after it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from forwarder.adapters.senders import MemorySender
from forwarder.adapters.sql.directory import SqlDirectory
from forwarder.core import Outcome, Policy
from forwarder.flows.forward import Forwarder, Inbound
from models import Alias, make_engine, make_session_factory, utcnow
from tests.forwarder.cli.test_cli import ORDER, Cli, app  # noqa: F401  (app: the fixture)


def forward(cli: Cli, address: str) -> tuple[list[Outcome], int]:
    """One message to ``address`` through the real pipeline on the CLI's database: the outcomes
    and how many messages the (memory) sender sent."""
    engine = make_engine(cli.database_url)
    try:
        sender = MemorySender()
        forwarder = Forwarder(SqlDirectory(make_session_factory(engine)), sender, Policy(), utcnow)
        raw = ORDER.replace(b"{to}", address.encode())
        reports = forwarder.process(raw, Inbound(f"m-{utcnow().timestamp()}", (address,)))
        return [r.outcome for r in reports], len(sender.sent)
    finally:
        engine.dispose()


def change(cli: Cli, address: str, **values: Any) -> None:
    engine = make_engine(cli.database_url)
    try:
        with make_session_factory(engine)() as session:
            session.execute(update(Alias).where(Alias.address == address).values(**values))
            session.commit()
    finally:
        engine.dispose()


def test_disable_then_enable_switches_what_the_forwarder_does(app: Cli) -> None:  # noqa: F811
    alias = app.create_alias()
    assert forward(app, alias) == ([Outcome.FORWARDED], 1)

    off = app.ok("alias", "disable", alias.upper())
    assert off.stdout == f"Disabled {alias}: it is switched off, and new mail to it is dropped.\n"
    assert app.query(select(Alias.enabled)) == [(False,)]
    assert forward(app, alias) == ([Outcome.DROPPED_DISABLED], 0)

    on = app.ok("alias", "enable", alias)
    assert on.stdout == f"Enabled {alias}: it forwards again.\n"
    assert app.query(select(Alias.enabled)) == [(True,)]
    assert forward(app, alias) == ([Outcome.FORWARDED], 1)


def test_the_owner_s_switch_clears_the_service_s_reason(app: Cli) -> None:  # noqa: F811
    alias = app.create_alias()
    change(app, alias, enabled=False, disabled_reason="complaint")
    app.ok("alias", "enable", alias)
    assert app.query(select(Alias.enabled, Alias.disabled_reason)) == [(True, None)]


def test_an_unknown_or_deleted_address_is_one_line_naming_it(app: Cli) -> None:  # noqa: F811
    alias = app.create_alias()
    change(app, alias, deleted_at=utcnow(), enabled=False)
    for command in ("disable", "enable"):
        for address in (alias, "Nobody@othermail.example"):
            result = app.run("alias", command, address)
            assert result.exit_code == 1
            assert result.stdout == ""
            [line] = result.stderr.splitlines()
            assert address.lower() in line and "unknown or deleted" in line
    assert app.query(select(Alias.enabled)) == [(False,)]


def test_enabling_an_expired_alias_says_why_it_still_does_not_forward(app: Cli) -> None:  # noqa: F811
    dropping = app.create_alias("--max-messages", "1")
    rejecting = app.create_alias("--expires-in", "2h", "--expired-action", "reject")
    change(app, dropping, enabled=False, message_count=1)
    change(app, rejecting, enabled=False, expires_at=utcnow().replace(year=2020))

    dropped = app.ok("alias", "enable", dropping).stdout
    assert dropped.startswith(f"Enabled {dropping}, but it still does not forward: ")
    assert "after 1 messages" in dropped and "is dropped until it is extended" in dropped
    assert forward(app, dropping) == ([Outcome.DROPPED_EXPIRED_COUNT], 0)

    rejected = app.ok("alias", "enable", rejecting).stdout
    assert "still does not forward" in rejected and "expired at 2020" in rejected
    assert "rejected (its sender gets a bounce)" in rejected
    assert dict(app.query(select(Alias.address, Alias.enabled))) == {dropping: True, rejecting: True}


def test_the_help_lists_both_commands(app: Cli) -> None:  # noqa: F811
    text = app.ok("alias", "--help").stdout
    assert "disable" in text and "enable" in text
    assert "ADDRESS" in app.ok("alias", "disable", "--help").stdout
