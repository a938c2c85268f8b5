"""Fault injection on the Lambda path: fakes at the AWS edges, the real code and a real SQLite file
in between. Used by tests/forwarder/hosts/test_faults.py and bench/faults.py.

What is real: ``LambdaRuntime.from_settings`` and ``invoke`` (with its in-invocation retries),
``S3Store``, ``SesV2Sender`` (its error mapping), ``Forwarder``, ``SqlDirectory`` on a migrated
SQLite database file. What is fake:

- :class:`FakeS3` and :class:`FakeSesV2`, boto3-client stand-ins that raise real botocore
  ``ClientError`` s (S3 ``InternalError`` 500 / ``SlowDown`` 503; SES ``TooManyRequestsException``
  429), which the real adapters map to ``StoreUnavailable`` / ``SendRetryable``;
- the database disconnect: a dialect ``do_execute`` hook closes the SQLite connection under a
  statement, so SQLAlchemy meets a really closed connection, invalidates it, and ``SqlDirectory``
  raises ``DatabaseUnavailable``;
- the crash: :class:`FakeSesV2` accepts a send, then raises :class:`SimulatedCrash` (a
  ``BaseException``, like the runtime dying), before ``settle`` records it;
- :class:`LambdaEmulator`: asynchronous invocation. Each event is invoked; one in ten is delivered
  twice; an invocation that raises is invoked again after 1 and 3 minutes (MaximumRetryAttempts 2),
  then an invocation record with the event goes to the dead-letter queue fake. Time is a fake clock
  that the in-invocation backoff sleeps advance; claims are taken over at once (claim timeout 0).

A failure after SES accepted a copy but before the delivery row recorded it (the crash, or a
disconnect inside ``settle``) cannot be told apart from a failed send: the next attempt sends again.
Mail is never lost, so such a message may be sent twice; :class:`FaultReport` counts those copies as
``ambiguous``, apart from ``duplicated`` copies that no such failure explains.

Every figure of the report is counted from what the fakes recorded: the copies the SES fake
accepted, the post-send failures the fakes injected, the records in the dead-letter queue fake.
"""

from __future__ import annotations

import heapq
import io
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import event as sa_event

from forwarder.accounts import ensure_destination, ensure_user
from forwarder.flows.mail_limits import MailLimits
from forwarder.hosts.lambda_handler import LambdaRuntime
from forwarder.hosts.retry import RetryPolicy
from forwarder.settings import Settings
from models import Alias, make_engine, make_session_factory, utcnow
from tests.support.databases import migrate

BUCKET = "othermail-inbound"
PREFIX = "inbound/"
REGION = "us-east-1"
DOMAIN = "othermail.example"
#: Alias -> its verified destinations: one alias fans out to two.
ALIASES: dict[str, tuple[str, ...]] = {
    f"shop-1@{DOMAIN}": ("ann@real.example",),
    f"news-2@{DOMAIN}": ("bob@real.example",),
    f"team-3@{DOMAIN}": ("cat@real.example", "dan@real.example"),
}
#: Lambda's asynchronous retries: two more invocations, after about one and two more minutes.
RETRY_DELAYS = (60.0, 120.0)
#: The function's timeout: each invocation's budget.
TIMEOUT_SECONDS = 120.0
_FAULT_ID = re.compile(rb"fault-id: (\S+)")


class SimulatedCrash(BaseException):
    """The runtime died (killed, out of memory) right after SES accepted a message."""


class Clock:
    """Fake seconds: the in-invocation backoff sleeps advance it, and so does the emulator."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass
class Script:
    """The faults one message meets: ``kind`` fails ``remaining`` more times (None: always)."""

    kind: str
    remaining: int | None

    def take(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass
class Faults:
    """What is injected, and what the fakes saw; shared by every fake of one run."""

    rng: random.Random
    scripts: dict[str, Script] = field(default_factory=dict)
    current: str = ""  # the message of the invocation running now
    fired: Counter[str] = field(default_factory=Counter)
    #: (message, destination) -> what happened to it, in order: "sent" or "post-send-failure".
    history: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    #: The copies SES accepted whose delivery rows are not committed yet (a message's copies are
    #: all sent, then recorded in one transaction).
    unrecorded: list[tuple[str, str]] = field(default_factory=list)
    _db_target: int = 0
    _db_count: int = 0
    _db_typical: int = 8

    def plan(self, message_ids: list[str], rate: float) -> None:
        """Give ``rate`` of the messages a fault script: mostly short (the in-invocation retries
        absorb it), some longer than an invocation (Lambda retries), some endless (dead letter)."""
        for message_id in message_ids:
            if self.rng.random() >= rate:
                continue
            kind = self.rng.choices(("s3", "ses", "db", "crash"), weights=(3, 3, 3, 1))[0]
            roll = self.rng.random()
            if kind == "crash":
                remaining: int | None = 1 if roll < 0.9 else 2
            elif roll < 0.6:
                remaining = self.rng.randint(1, 3)
            elif roll < 0.85:
                remaining = self.rng.randint(8, 12)
            else:
                remaining = None
            self.scripts[message_id] = Script(kind, remaining)

    def due(self, kind: str) -> bool:
        script = self.scripts.get(self.current)
        return script is not None and script.kind == kind and script.take()

    def attempt_started(self) -> None:
        """A new attempt reads the message: pick the statement a database fault would hit, among
        as many as the attempt before made (the first when the database is down for good)."""
        if self._db_count:
            self._db_typical = self._db_count
        self._db_count = 0
        script = self.scripts.get(self.current)
        if script is None or script.kind != "db":
            self._db_target = 0
        else:
            self._db_target = 1 if script.remaining is None else self.rng.randint(1, self._db_typical)

    def db_statement(self) -> bool:
        """Whether to disconnect under this statement: the target one, and (the database being down
        while its script lasts) every later one of the attempt, so that the directory's run-again on
        a new connection meets the outage too."""
        self._db_count += 1
        if not self._db_target or self._db_count < self._db_target or not self.due("db"):
            return False
        self.fired["db"] += 1
        self._lose_unrecorded()  # inside settle: SES has the copies, the rows do not
        return True

    def committed(self) -> None:
        self.unrecorded.clear()

    def invocation_failed(self) -> None:
        self._lose_unrecorded()  # an error after the sends, before their rows were committed

    def _lose_unrecorded(self) -> None:
        for key in self.unrecorded:
            self.history[key].append("post-send-failure")
            self.fired["post-send"] += 1
        self.unrecorded.clear()


def _client_error(operation: str, code: str, status: int, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class FakeS3:
    """``get_object`` over a dict, failing when the message's script says so."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.objects[(Bucket, Key)] = bytes(Body)
        return {}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.faults.attempt_started()
        if self.faults.due("s3"):
            self.faults.fired["s3"] += 1
            code, status = self.faults.rng.choice((("InternalError", 500), ("SlowDown", 503)))
            raise _client_error("GetObject", code, status, "injected")
        try:
            return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}
        except KeyError:
            raise _client_error("GetObject", "NoSuchKey", 404, "The specified key does not exist.") from None


class FakeSesV2:
    """``send_email`` that records what it accepted, throttles, or accepts and then crashes."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.accepted = 0

    def send_email(
        self,
        *,
        FromEmailAddress: str,
        Destination: dict[str, Any],
        Content: dict[str, Any],  # noqa: N803
        **_: Any,
    ) -> dict[str, Any]:
        faults = self.faults
        if faults.due("ses"):
            faults.fired["ses"] += 1
            raise _client_error("SendEmail", "TooManyRequestsException", 429, "Maximum sending rate exceeded.")
        raw = Content["Raw"]["Data"]
        found = _FAULT_ID.search(raw)
        self.accepted += 1
        if found is None:  # not one of the harness's messages (a notice): accepted, not counted
            return {"MessageId": f"ses-{self.accepted}"}
        key = (found.group(1).decode(), Destination["ToAddresses"][0])
        faults.history[key].append("sent")
        faults.unrecorded.append(key)
        if faults.due("crash"):
            faults.fired["crash"] += 1
            raise SimulatedCrash(f"the runtime died after SES accepted {key}")
        return {"MessageId": f"ses-{self.accepted}"}


class FakeSession:
    """What ``LambdaRuntime.from_settings`` asks a boto3 session for."""

    def __init__(self, s3: FakeS3, ses: FakeSesV2) -> None:
        # "ses" (v1) is the expired-reject bouncer's client; no fault test bounces, so the SESv2
        # fake stands in and a send_bounce would fail loudly as an unknown attribute.
        self._clients = {"s3": s3, "sesv2": ses, "ses": ses}

    def client(self, name: str, **_: Any) -> Any:
        return self._clients[name]


@dataclass
class Context:
    """The Lambda context's time left, on the fake clock."""

    clock: Clock
    deadline: float
    function_name: str = "othermail-forwarder"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock()) * 1000))


def ses_event(message_id: str, recipient: str) -> dict[str, Any]:
    receipt = {"recipients": [recipient], "action": {"type": "Lambda", "invocationType": "Event"}}
    for name in ("spam", "virus", "spf", "dkim", "dmarc"):
        receipt[f"{name}Verdict"] = {"status": "PASS"}
    mail = {
        "messageId": message_id,
        "source": "jane@example.net",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "destination": [recipient],
    }
    return {"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {"mail": mail, "receipt": receipt}}]}


def raw_message(message_id: str, recipient: str) -> bytes:
    return (
        f"From: Jane Doe <jane@example.net>\r\n"
        f"To: {recipient}\r\n"
        f"Subject: order {message_id}\r\n"
        f"Message-ID: <{message_id}@example.net>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"\r\n"
        f"fault-id: {message_id}\r\n"
    ).encode()


def invocation_record(event: dict[str, Any], error: BaseException, request_id: str) -> dict[str, Any]:
    """What Lambda's on-failure destination writes to the queue after the last retry."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-23T10:03:00.000Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:othermail-forwarder:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1 + len(RETRY_DELAYS),
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": error.__class__.__name__},
    }


@dataclass(frozen=True)
class FaultReport:
    messages: int
    delivered: int
    dead_lettered: int
    lost: int
    duplicated: int
    ambiguous: int

    def line(self) -> str:
        return (
            f"messages={self.messages} delivered={self.delivered} dead_lettered={self.dead_lettered} "
            f"lost={self.lost} duplicated={self.duplicated} ambiguous={self.ambiguous}"
        )


class LambdaEmulator:
    """One run: the database, the fakes, the events, and Lambda's asynchronous semantics."""

    def __init__(
        self, workdir: Path, messages: int, seed: int, fault_rate: float = 0.2, duplicate_rate: float = 0.1
    ) -> None:
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.faults = Faults(random.Random(self.rng.getrandbits(64)))
        self.s3 = FakeS3(self.faults)
        self.ses = FakeSesV2(self.faults)
        self.database_url = f"sqlite:///{workdir / 'faults.db'}"
        migrate(self.database_url)
        self._aliases()
        addresses = list(ALIASES)
        self.recipient = {f"m{n:05d}": addresses[n % len(addresses)] for n in range(messages)}
        for message_id, recipient in self.recipient.items():
            self.s3.put_object(Bucket=BUCKET, Key=PREFIX + message_id, Body=raw_message(message_id, recipient))
        self.faults.plan(list(self.recipient), fault_rate)
        self.duplicate_rate = duplicate_rate
        # no hourly or daily limits: a thousand messages to three aliases in minutes is the point
        self.settings = Settings(
            database_url=self.database_url,
            s3_bucket=BUCKET,
            s3_prefix=PREFIX,
            domains=(DOMAIN,),
            aws_region=REGION,
            claim_timeout_seconds=0,
            mail_limits=MailLimits(),
        )
        self.dead_letters: list[dict[str, Any]] = []
        self.duplicates = 0
        self.invocations = 0
        self.crashes = 0
        self.runtime = self.cold_start()

    def _aliases(self) -> None:
        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine)() as db:
                now = utcnow()
                user = ensure_user(db, "owner@owner.example")
                for address, destinations in ALIASES.items():
                    alias = Alias(address=address, user_id=user.id, created_at=now)
                    alias.destinations.extend(ensure_destination(db, user, d, verified_at=now) for d in destinations)
                    db.add(alias)
                db.commit()
        finally:
            engine.dispose()

    def cold_start(self) -> LambdaRuntime:
        runtime = LambdaRuntime.from_settings(self.settings, session=FakeSession(self.s3, self.ses))
        runtime.retry = RetryPolicy(sleep=self.clock.sleep, clock=self.clock, rng=self.faults.rng.random)
        faults = self.faults

        def before(cursor: Any, *_: Any) -> None:
            if faults.db_statement():
                cursor.connection.close()  # the statement now meets a closed connection

        sa_event.listen(runtime.engine, "do_execute", before)
        sa_event.listen(runtime.engine, "do_execute_no_params", before)
        sa_event.listen(runtime.engine, "commit", lambda _connection: faults.committed())
        return runtime

    def run(self) -> FaultReport:
        queue: list[tuple[float, int, str, int]] = []
        sequence = 0
        for n, message_id in enumerate(self.recipient):
            deliveries = [float(n)]
            if self.rng.random() < self.duplicate_rate:  # Lambda may deliver an event twice
                deliveries.append(n + self.rng.uniform(0.0, 200.0))
                self.duplicates += 1
            for at in deliveries:
                sequence += 1
                heapq.heappush(queue, (at, sequence, message_id, 0))
        while queue:
            at, _, message_id, retried = heapq.heappop(queue)
            self.clock.now = max(self.clock.now, at)
            error = self._invoke(message_id)
            if error is None:
                continue
            if retried < len(RETRY_DELAYS):
                sequence += 1
                heapq.heappush(queue, (self.clock.now + RETRY_DELAYS[retried], sequence, message_id, retried + 1))
            else:
                record = invocation_record(self._event(message_id), error, f"req-{sequence}")
                self.dead_letters.append(json.loads(json.dumps(record)))
        self.runtime.close()
        return self.report()

    def _event(self, message_id: str) -> dict[str, Any]:
        return ses_event(message_id, self.recipient[message_id])

    def _invoke(self, message_id: str) -> BaseException | None:
        """One invocation; the error Lambda would see, or None."""
        self.invocations += 1
        self.faults.current = message_id
        context = Context(self.clock, self.clock() + TIMEOUT_SECONDS)
        try:
            self.runtime.invoke(self._event(message_id), emit=lambda _line: None, context=context)
            return None
        except SimulatedCrash as crash:
            self.faults.invocation_failed()
            self.crashes += 1
            self.runtime.close()
            self.runtime = self.cold_start()  # the next invocation gets a fresh runtime
            return crash
        except Exception as error:  # what the handler raised: Lambda retries the event
            self.faults.invocation_failed()
            return error
        finally:
            self.faults.current = ""

    def expected(self, message_id: str) -> tuple[str, ...]:
        """The destinations a message should reach."""
        return ALIASES[self.recipient[message_id]]

    def copies(self) -> Counter[tuple[str, str]]:
        return Counter({key: events.count("sent") for key, events in self.faults.history.items()})

    def report(self) -> FaultReport:
        duplicated = ambiguous = 0
        for events in self.faults.history.values():
            first, explained = True, False
            for what in events:
                if what == "post-send-failure":
                    explained = True
                elif first:
                    first = False
                elif explained:
                    ambiguous += 1
                    explained = False
                else:
                    duplicated += 1
        copies = self.copies()
        delivered = {m for m in self.recipient if all(copies[(m, d)] for d in self.expected(m))}
        in_dlq = {record["requestPayload"]["Records"][0]["ses"]["mail"]["messageId"] for record in self.dead_letters}
        dead_lettered = in_dlq - delivered
        lost = set(self.recipient) - delivered - dead_lettered
        return FaultReport(len(self.recipient), len(delivered), len(dead_lettered), len(lost), duplicated, ambiguous)

    def resent_after_post_send_failure(self) -> int:
        """Post-send failures followed by another accepted copy of the same delivery."""
        count = 0
        for events in self.faults.history.values():
            for i, what in enumerate(events):
                if what == "post-send-failure" and "sent" in events[i + 1 :]:
                    count += 1
        return count


def run_faults(workdir: Path, messages: int, seed: int, **options: Any) -> tuple[FaultReport, LambdaEmulator]:
    emulator = LambdaEmulator(workdir, messages, seed, **options)
    return emulator.run(), emulator
