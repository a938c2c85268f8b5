"""``othermail demo`` runs in a throwaway folder unless told otherwise, so trying it never adds an
alias and messages to the live database and outbox; it shows the database URL without its password
(issue 12, item 22)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, make_url, select

from models import Alias, make_engine, make_session_factory
from tests.conftest import fresh_database
from tests.forwarder.cli.test_cli import Cli, app, json_lines  # noqa: F401  (app: the fixture)


def test_demo_leaves_the_configured_database_and_outbox_alone(app: Cli) -> None:
    live_alias = app.create_alias()
    result = app.ok("demo")
    forwarded = [line for line in json_lines(result) if line["outcome"] == "forwarded"]
    assert forwarded
    assert app.query(select(Alias.address)) == [(live_alias,)]  # no demo alias in the live database
    assert app.outbox_messages() == []
    folder = re.search(r"throwaway folder (\S+)", result.stdout)
    assert folder, result.stdout
    demo_dir = Path(folder.group(1))
    assert app.data_dir.resolve() not in demo_dir.resolve().parents
    assert f"holds {len(forwarded)} forwarded message(s)" in result.stdout
    assert len(list((demo_dir / "outbox" / "new").iterdir())) == len(forwarded)


def test_demo_in_a_named_folder_keeps_it_and_shows_idempotency(app: Cli, tmp_path: Path) -> None:
    where = tmp_path / "demo"
    first = json_lines(app.ok("demo", "--data-dir", str(where)))
    second = json_lines(app.ok("demo", "--data-dir", str(where)))
    assert [line["file"] for line in first] == [line["file"] for line in second]
    assert all(line["outcome"] == "duplicate (already handled)" for line in second)
    assert (where / "othermail.db").exists() and not (app.data_dir / "othermail.db").exists()


def test_in_place_and_data_dir_exclude_each_other(app: Cli, tmp_path: Path) -> None:
    result = app.run("demo", "--in-place", "--data-dir", str(tmp_path / "x"))
    assert result.exit_code == 2 and "--in-place" in result.output and "--data-dir" in result.output


@pytest.mark.postgres
def test_demo_in_place_shows_the_database_url_without_its_password(app: Cli) -> None:
    with fresh_database("postgresql") as url:
        with_password = make_url(url).set(password="S3cret-demo-pw").render_as_string(hide_password=False)
        result = app.ok("demo", "--in-place", OTHERMAIL_DATABASE_URL=with_password)
        assert "S3cret-demo-pw" not in result.output
        assert make_url(with_password).render_as_string(hide_password=True) in result.stdout
        assert ":***@" in result.stdout
        engine = make_engine(url)  # the demo's alias went into that database, as asked
        try:
            with make_session_factory(engine)() as session:
                assert session.scalar(select(func.count()).select_from(Alias)) == 1
        finally:
            engine.dispose()
