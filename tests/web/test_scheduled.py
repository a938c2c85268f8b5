"""web/scheduled.py: the jobs zappa runs on a schedule (zappa_settings.json ``events``)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from forwarder.ops.domain_checks import records_to_publish
from models import User, UserDomain, utcnow
from tests.deploy.test_zappa import stage_config
from tests.knot_zones import KnotZones, knot_zones
from tests.web.test_domains_pages import REGION, make_app
from web.scheduled import recheck_domains

ZONES = ("good.test", "gone.test")


class Context:
    """What a Lambda context offers the job: the time left (``then`` after the first question)."""

    def __init__(self, millis: int, then: int | None = None) -> None:
        self.millis = millis
        self.then = millis if then is None else then

    def get_remaining_time_in_millis(self) -> int:
        left, self.millis = self.millis, self.then
        return left


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotZones]:
    with knot_zones(tmp_path_factory.mktemp("knot"), ZONES) as server:
        yield server


def seeded(tmp_path: Path, nameserver: str, **config: object) -> Flask:
    app = make_app(tmp_path, "outbox", nameserver, **{"DOMAIN_GRACE_HOURS": 0, **config})
    sessions = app.extensions["othermail.sessions"]
    with sessions() as db:
        user = User(email="ann@example.org")
        db.add(user)
        db.flush()
        for name in ZONES:
            db.add(UserDomain(user_id=user.id, name=name, verification_token=f"token-{name}", status="verified"))
        db.commit()
    return app


def statuses(app: Flask) -> dict[str, str]:
    with app.extensions["othermail.sessions"]() as db:
        return {d.name: d.status for d in db.scalars(select(UserDomain))}


def test_every_stage_rechecks_domains_every_six_hours() -> None:
    for stage in ("dev", "production"):
        assert {"function": "web.scheduled.recheck_domains", "expression": "rate(6 hours)"} in stage_config(stage)[
            "events"
        ]


def test_the_job_moves_domains_as_the_cli_does_and_logs_one_line(
    tmp_path: Path, knot: KnotZones, caplog: pytest.LogCaptureFixture
) -> None:
    knot.set_zone(
        "good.test", [r.zone_line() for r in records_to_publish("good.test", "token-good.test", REGION, (), ses=False)]
    )
    knot.set_zone("gone.test", [])
    app = seeded(tmp_path, knot.nameserver)
    with caplog.at_level(logging.INFO, logger="othermail.scheduled"):
        result = recheck_domains({"source": "aws.events"}, Context(60_000), app=app)
    assert result == {
        "event": "domains-recheck",
        "checked": 2,
        "could_not_check": 0,
        "postponed": 0,
        "verified": 1,
        "failing": 0,
        "suspended": 1,
    }
    assert statuses(app) == {"good.test": "verified", "gone.test": "suspended"}  # grace 0: at once
    assert '"event": "domains-recheck"' in caplog.text and "gone.test: verified -> suspended" in caplog.text
    app.extensions["othermail.engine"].dispose()


def test_near_its_timeout_the_job_leaves_the_rest_for_the_next_run(tmp_path: Path, knot: KnotZones) -> None:
    knot.set_zone("good.test", [])
    knot.set_zone("gone.test", [])
    app = seeded(tmp_path, knot.nameserver)
    assert recheck_domains({}, Context(9_000), app=app)["postponed"] == 2
    assert statuses(app) == {"good.test": "verified", "gone.test": "verified"}
    # time for one: the domain checked longest ago goes first (never checked counts as longest)
    with app.extensions["othermail.sessions"]() as db:
        db.scalars(select(UserDomain).where(UserDomain.name == "gone.test")).one().last_checked_at = utcnow()
        db.commit()
    result = recheck_domains({}, Context(60_000, then=9_000), app=app)
    assert (result["checked"], result["postponed"]) == (1, 1)
    assert statuses(app) == {"good.test": "suspended", "gone.test": "verified"}
    result = recheck_domains({}, Context(60_000, then=9_000), app=app)
    assert statuses(app) == {"good.test": "suspended", "gone.test": "suspended"}
    app.extensions["othermail.engine"].dispose()


def test_a_run_that_could_not_check_fails_visibly_and_changes_nothing(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        app = seeded(tmp_path, f"127.0.0.1:{silent.getsockname()[1]}", DNS_TIMEOUT=0.3)
        with pytest.raises(RuntimeError, match="2 could not be checked"):
            recheck_domains({}, Context(60_000), app=app)
    assert statuses(app) == {"good.test": "verified", "gone.test": "verified"}
    app.extensions["othermail.engine"].dispose()
