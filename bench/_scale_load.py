"""The data of bench/scale.py: its database, the aliases loaded with COPY, and the 2 KB messages.

Not meant to be run by hand. Every alias has an owner, and every owner one verified destination
that all their aliases forward to; owners have ``ALIASES_PER_USER`` aliases each (alias ``i``
belongs to user ``i // ALIASES_PER_USER``), so a run at 1,000,000 aliases has 100,000 users.
Addresses are made from their index (:func:`alias_address`), so a worker picks a random alias
without reading the table.

The load writes the rows with ``COPY ... FROM STDIN`` (psycopg's ``cursor.copy``) into the
migrated, empty tables, in one transaction with ``session_replication_role = replica`` (no foreign
key trigger per row: the rows are consistent by construction). Inserting a million random
addresses into a unique index one at a time is what costs (about 30 s here), so the tables'
secondary indexes and unique constraints are read from the catalog, dropped before the COPY and
made again after it from their own definitions (a sorted build), in the same transaction: the
schema is the migrated one when the load commits. Then the id sequences are set past the loaded
ids and ``VACUUM ANALYZE`` gives the planner the tables' sizes, as production would have them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

DOMAIN = "othermail.example"
ALIASES_PER_USER = 10
#: What the rows' timestamps say (naive UTC, as models.base.UTCDateTime stores them).
LOADED_AT = "2026-01-01 00:00:00"
#: Rows per COPY write: large enough that the Python side is not the bottleneck.
_CHUNK = 20_000

_TABLES = ("users", "destinations", "aliases", "alias_destinations")

#: The tables' unique constraints and indexes other than primary keys: (table, name, definition).
_SECONDARY = """
SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid), con.conname, pg_get_constraintdef(con.oid)
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.contype = 'u'
WHERE c.relname = ANY(%s) AND NOT x.indisprimary AND c.relnamespace = 'public'::regnamespace
ORDER BY c.relname, i.relname
"""

_WORDS = (
    "shop news bank club mail travel games forum bills promo school work family health music books "
    "cloud dev jobs press photo video sport market crypto food garden home pets kids auto insure "
    "tax legal event ticket hotel flight rent energy phone web social dating charity church gym"
).split()


def alias_address(index: int) -> str:
    """The address of alias ``index`` (0-based): a word and eight hex digits, unique per index
    (a multiplication by an odd constant is a bijection modulo 2**32)."""
    return f"{_WORDS[index % len(_WORDS)]}.{(index * 0x9E3779B1) & 0xFFFFFFFF:08x}@{DOMAIN}"


def user_count(aliases: int) -> int:
    return max(1, -(-aliases // ALIASES_PER_USER))


@dataclass(frozen=True)
class Loaded:
    aliases: int
    users: int
    copy_seconds: float
    analyze_seconds: float


def _chunks(count: int, line: Callable[[int], str]) -> Iterator[bytes]:
    for start in range(0, count, _CHUNK):
        yield "".join(line(i) for i in range(start, min(count, start + _CHUNK))).encode()


def load(conninfo: str, aliases: int) -> Loaded:
    """COPY ``aliases`` aliases, their users and destinations into the migrated database."""
    import psycopg

    users = user_count(aliases)
    started = time.perf_counter()
    with psycopg.connect(conninfo) as connection:
        connection.execute("SET synchronous_commit = off")
        connection.execute("SET session_replication_role = replica")
        connection.execute("SET maintenance_work_mem = '256MB'")
        with connection.cursor() as cursor:
            secondary = cursor.execute(_SECONDARY, (list(_TABLES),)).fetchall()
            for table, index, _definition, constraint, _constraint_def in secondary:
                if constraint:
                    cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"')
                else:
                    cursor.execute(f'DROP INDEX "{index}"')
            tables: list[tuple[str, int, Callable[[int], str]]] = [
                (
                    "users (id, email, created_at, email_verified_at)",
                    users,
                    lambda j: f"{j + 1}\towner{j}@people.example\t{LOADED_AT}\t{LOADED_AT}\n",
                ),
                (
                    "destinations (id, user_id, email, verified_at, created_at)",
                    users,
                    lambda j: f"{j + 1}\t{j + 1}\towner{j}@inbox.example\t{LOADED_AT}\t{LOADED_AT}\n",
                ),
                (
                    "aliases (id, address, user_id, created_at)",
                    aliases,
                    lambda i: f"{i + 1}\t{alias_address(i)}\t{i // ALIASES_PER_USER + 1}\t{LOADED_AT}\n",
                ),
                (
                    "alias_destinations (alias_id, destination_id)",
                    aliases,
                    lambda i: f"{i + 1}\t{i // ALIASES_PER_USER + 1}\n",
                ),
            ]
            for table, count, line in tables:
                with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                    for chunk in _chunks(count, line):
                        copy.write(chunk)
            for table, _index, definition, constraint, constraint_def in secondary:
                if constraint:
                    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {constraint_def}')
                else:
                    cursor.execute(definition)
            for table in ("users", "destinations", "aliases"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        connection.commit()
    copied = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"VACUUM ANALYZE {', '.join(_TABLES)}")
    return Loaded(aliases, users, copied - started, time.perf_counter() - copied)


_FILLER = (
    "Thanks for your order. Your parcel left our warehouse this morning and should arrive within "
    "two working days. You can follow it with the tracking link in your account. If anything is "
    "wrong with the delivery, reply to this message and our support team will answer within a day."
)


def message(rng: random.Random, to: str, message_id: str, size: int = 2048) -> bytes:
    """A plain-text message of about ``size`` bytes to ``to`` (CRLF lines, as SES stores mail)."""
    headers = [
        "Return-Path: <orders@shop.example.net>",
        "Received: from mail.shop.example.net (mail.shop.example.net [198.51.100.7])"
        f"\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id {rng.getrandbits(64):016x}"
        f"\r\n for {to}; Mon, 07 Dec 2026 10:00:01 +0000 (UTC)",
        "MIME-Version: 1.0",
        "From: Example Shop <orders@shop.example.net>",
        f"To: {to}",
        "Date: Mon, 07 Dec 2026 11:00:00 +0100",
        f"Message-ID: <{message_id}>",
        f"Subject: Your order {rng.randrange(10**8):08d} has shipped",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
    ]
    head = "\r\n".join(headers) + "\r\n\r\n"
    lines = []
    length = len(head)
    while length < size:
        line = _FILLER[: min(len(_FILLER), max(1, size - length - 2))]
        lines.append(line)
        length += len(line) + 2
    return (head + "\r\n".join(lines) + "\r\n").encode()
