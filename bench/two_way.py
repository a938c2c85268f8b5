"""Two-way aliases next to one-way forwarding, measured side by side in one run.

    .venv/bin/python bench/two_way.py [--messages 200] [--rounds 5]

Three paths through the whole flow (forwarder/runtime.py's Forwarder on a fresh SQLite database,
a memory sender, rate limits too high to be reached: a rate-limited message would be dropped, not
forwarded), each message a new one, the rounds interleaved and their order rotated; the median
wall time and CPU time per message of each path are printed with their ratios to one-way forwarding:

- one-way forward: ``OTHERMAIL_TWO_WAY=false``;
- two-way forward: the sender and a Cc get reverse addresses, List-Unsubscribe, thread links;
- reply: the owner's answer to a reverse address, sent from the alias to the contact.

It also prints the statements and database transactions one message of each path costs in steady
state (SQLAlchemy ``before_cursor_execute`` and ``begin`` events; the contacts exist), which the
issue bounds at 3 transactions for a forward. tests/forwarder/adapters/sql/test_two_way_statements.py
holds the two-way forward's statements to their bound on every backend.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import event

from forwarder.adapters.senders import MemorySender
from forwarder.core import Verdicts
from forwarder.flows.forward import Inbound
from forwarder.flows.mail_limits import MailLimits
from forwarder.runtime import Runtime
from forwarder.settings import Settings

ALIAS = "shop-7hq2@othermail.example"
OWNER = "me@real.example"
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")
BODY = b"Hello,\r\n\r\n" + b"Your order is on its way. " * 40 + b"\r\n"


def build(folder: Path) -> tuple[Runtime, Runtime]:
    import migrations
    from models import Alias, Destination, User, utcnow

    url = f"sqlite:///{folder / 'bench.db'}"
    migrations.upgrade(url)
    settings = Settings(
        data_dir=folder,
        database_url=url,
        domains=("othermail.example",),
        sender="outbox",
        public_url="https://mail.othermail.example",
        contact_keys=(("k1", secrets.token_bytes(32)),),
        # counted in every window as in service, never reached: each message is forwarded
        mail_limits=MailLimits(10**9, 10**9, 10**9, 10**9),
    )
    two_way = Runtime.build(settings, sender=MemorySender())
    one_way = Runtime.build(replace(settings, two_way=False), sender=MemorySender(), engine=two_way.engine)
    with two_way.sessions() as db:
        user = User(email="owner@example.org")
        db.add(user)
        db.flush()
        alias = Alias(address=ALIAS, user_id=user.id)
        alias.destinations.append(Destination(user_id=user.id, email=OWNER, verified_at=utcnow()))
        db.add(alias)
        db.commit()
    return one_way, two_way


def forward_message(n: int) -> bytes:
    return (
        f"From: Jane <jane@shop.example>\r\nTo: {ALIAS}\r\nCc: Bob <bob@shop.example>\r\n"
        f"Subject: order {n}\r\nMessage-ID: <order-{n}@shop.example>\r\n\r\n"
    ).encode() + BODY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages per path and round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="othermail-bench-") as folder:
        one_way, two_way = build(Path(folder))
        two_way.forwarder.process(forward_message(0), Inbound("warm", (ALIAS,), PASS, "jane@shop.example"))
        with two_way.sessions() as db:
            from models import Alias

            alias_id = db.query(Alias.id).filter(Alias.address == ALIAS).scalar()
        reverse = two_way.contacts.create(alias_id, "othermail.example", "jane@shop.example").reverse
        counter = iter(range(1, 10**9))

        def one(run: Runtime) -> Callable[[], None]:
            def go() -> None:
                n = next(counter)
                run.forwarder.process(forward_message(n), Inbound(f"f{n}", (ALIAS,), PASS, "jane@shop.example"))

            return go

        def reply() -> None:
            n = next(counter)
            raw = (
                f"From: Me <{OWNER}>\r\nTo: {reverse}\r\nSubject: Re: order\r\nMessage-ID: <r{n}@real.example>\r\n"
                f"In-Reply-To: <order-0@shop.example>\r\n\r\n"
            ).encode() + BODY
            two_way.forwarder.process(raw, Inbound(f"r{n}", (reverse,), PASS, OWNER))

        paths = {"one-way forward": one(one_way), "two-way forward": one(two_way), "reply": reply}
        begun: list[object] = []
        statements: list[str] = []

        def count(connection: object) -> None:
            begun.append(connection)

        def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
            statements.append(sql)

        transactions, executed = {}, {}
        for fn in paths.values():
            fn()  # warm: each path's caches (users' domains) filled once, as in a running service
        event.listen(two_way.engine, "begin", count)
        event.listen(two_way.engine, "before_cursor_execute", statement)
        for name, fn in paths.items():
            begun.clear()
            statements.clear()
            fn()
            transactions[name], executed[name] = len(begun), len(statements)
        event.remove(two_way.engine, "begin", count)
        event.remove(two_way.engine, "before_cursor_execute", statement)

        times: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        names = list(paths)
        for round_ in range(options.rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                started, cpu_started = time.perf_counter(), time.process_time()
                for _ in range(options.messages):
                    paths[name]()
                times[name].append((time.perf_counter() - started) / options.messages)
                cpu[name].append((time.process_time() - cpu_started) / options.messages)
        base, cpu_base = statistics.median(times["one-way forward"]), statistics.median(cpu["one-way forward"])
        print(f"two-way aliases, {options.messages} messages x {options.rounds} rounds per path, SQLite, memory sender")
        print(
            f"{'path':<18} {'wall per message':>17} {'vs one-way':>11} {'CPU per message':>16} {'vs one-way':>11}"
            f" {'statements':>11} {'transactions':>13}"
        )
        for name in names:
            median, cpu_median = statistics.median(times[name]), statistics.median(cpu[name])
            print(
                f"{name:<18} {median * 1000:>14.2f} ms {median / base:>10.2f}x {cpu_median * 1000:>13.2f} ms"
                f" {cpu_median / cpu_base:>10.2f}x {executed[name]:>11} {transactions[name]:>13}"
            )
        ok = transactions["two-way forward"] <= 3
        print("forward transactions <= 3:", "PASS" if ok else "FAIL")
        one_way.close()
        two_way.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
