"""Apply SES feedback to the database: record it once, pause bouncing mailboxes, switch off aliases.

Each :class:`~forwarder.flows.feedback.Feedback` is one transaction on a connection the caller passes in
(:func:`apply_feedback`), or on one the store takes from its engine (:class:`FeedbackStore`):

1. a ``feedback_events`` row is inserted first. Its unique ``(feedback_id, recipient)`` makes the
   whole step idempotent: SNS delivers at least once, and a second delivery fails that insert and
   changes nothing else;
2. the forwarded copy is found by the SES message id its delivery row keeps
   (``deliveries.provider_message_id``): that row names the alias, and the destination when its
   address is still the bounced or complaining one. Feedback on an id no delivery has (mail the
   service sent itself, or a row since removed) is recorded with no destination and changes
   nothing else;
3. the destination's counters change, and it may be paused:

   - a permanent bounce pauses it at once;
   - a transient bounce (``Undetermined`` ones included) counts toward
     :attr:`FeedbackRules.soft_bounce_limit` (``OTHERMAIL_SOFT_BOUNCE_LIMIT``, default 3; 0 never
     pauses). The rule exactly: a soft bounce that occurred at most
     :attr:`FeedbackRules.soft_bounce_window` (``OTHERMAIL_SOFT_BOUNCE_WINDOW_DAYS``, default 7
     days) before or after the previous counted one adds one to ``soft_bounce_count``; one further
     apart starts the count again at 1. The bounce that brings the count to the limit pauses the
     destination. Pausing, and the owner resuming, set the count back to 0;
   - a complaint adds to ``complaint_count`` and, unless :attr:`FeedbackRules.complaint_action` is
     ``count`` (``OTHERMAIL_COMPLAINT_ACTION``), switches off the alias that carried the message,
     with a ``disabled_reason`` its owner sees (they may switch it on again).

   A destination already paused keeps the time and reason of its first pause.

Nothing is ever sent from here: not to the original sender (that would be backscatter), nor to
anyone else. The owner learns of a pause or a switched-off alias in the web app.

The statements are SQLAlchemy Core on the tables of ``models/tables.py``, like the forward path's:
a Lambda handling its first bounce or complaint loads neither ``sqlalchemy.orm`` nor the ORM models
(issue 15, tests/forwarder/hosts/test_lambda_imports.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from forwarder.adapters.sql.connections import connect, database_errors
from forwarder.core import Outcome
from forwarder.flows.feedback import BOUNCE_PERMANENT, COMPLAINT, Feedback
from models.limits import EMAIL_MAX_LENGTH, clip
from models.tables import DETAIL_MAX_LENGTH, DISABLED_REASON_MAX_LENGTH, PAUSE_REASON_MAX_LENGTH
from models.tables import aliases as _aliases
from models.tables import deliveries as _deliveries
from models.tables import destinations as _destinations
from models.tables import feedback_events as _events

COMPLAINT_ACTIONS = ("disable", "count")


@dataclass(frozen=True, slots=True)
class FeedbackRules:
    """When feedback pauses a destination or switches off an alias (see the module docstring)."""

    soft_bounce_limit: int = 3
    soft_bounce_window: timedelta = timedelta(days=7)
    complaint_action: str = "disable"

    def __post_init__(self) -> None:
        if self.complaint_action not in COMPLAINT_ACTIONS:
            raise ValueError(f"complaint_action must be one of {', '.join(COMPLAINT_ACTIONS)}")

    @classmethod
    def from_settings(cls, settings: Any) -> FeedbackRules:
        return cls(
            settings.soft_bounce_limit, timedelta(days=settings.soft_bounce_window_days), settings.complaint_action
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one feedback did."""

    feedback: Feedback
    #: The same feedback was applied before: nothing changed.
    duplicate: bool = False
    #: A delivery row has the feedback's SES message id.
    known: bool = False
    alias_id: int | None = None
    destination_id: int | None = None
    #: This feedback paused the destination.
    paused: bool = False
    #: This complaint switched the alias off.
    alias_disabled: bool = False
    #: The copy was sent from the alias to a contact (a reply, two-way aliases): the delivery row's
    #: (inbound message id, recipient, size), for the notice to its owner; None for a forwarded copy.
    reply_of: tuple[str, str, int] | None = None


def _text(value: str, limit: int) -> str:
    return clip(value, limit) or ""


def _pause_reason(feedback: Feedback, rules: FeedbackRules) -> str:
    what = f" ({feedback.sub_type})" if feedback.sub_type else ""
    said = f": {feedback.detail}" if feedback.detail else ""
    if feedback.kind == BOUNCE_PERMANENT:
        text = f"The mailbox refused a forwarded message for good{what}{said}"
    else:
        days = rules.soft_bounce_window.days
        text = (
            f"{rules.soft_bounce_limit} forwarded messages bounced within {days} days of each other; "
            f"the last{what}{said}"
        )
    return _text(text, PAUSE_REASON_MAX_LENGTH)


def _disabled_reason(feedback: Feedback, now: datetime) -> str:
    what = f" ({feedback.sub_type})" if feedback.sub_type else ""
    day = (feedback.occurred_at or now).strftime("%Y-%m-%d")
    return _text(
        f"Switched off after a spam complaint{what} on {day} about mail it forwarded.", DISABLED_REASON_MAX_LENGTH
    )


def _copy(
    connection: Connection, feedback: Feedback
) -> tuple[bool, int | None, int | None, tuple[str, str, int] | None]:
    """Whether a delivery has this SES message id; its alias; its destination if the address
    matches; the delivery's (message id, recipient, size) when the copy was the owner's reply to a
    contact (two-way aliases)."""
    rows = connection.execute(
        select(
            _deliveries.c.alias_id,
            _deliveries.c.destination_id,
            _destinations.c.email,
            _deliveries.c.outcome,
            _deliveries.c.inbound_message_id,
            _deliveries.c.recipient,
            _deliveries.c.bytes_in,
        )
        .select_from(_deliveries.outerjoin(_destinations, _destinations.c.id == _deliveries.c.destination_id))
        .where(_deliveries.c.provider_message_id == feedback.message_id[:255])
        .order_by(_deliveries.c.id)
    ).all()
    if not rows:
        return False, None, None, None
    reply = next(
        ((r.inbound_message_id, r.recipient, r.bytes_in or 0) for r in rows if r.outcome == Outcome.REPLIED.value),
        None,
    )
    for row in rows:
        if row.email is not None and row.email == feedback.recipient:
            return True, row.alias_id, row.destination_id, reply
    # the destination was deleted or its address changed since: the alias alone is known
    return True, rows[0].alias_id, None, reply


def _count(
    connection: Connection, destination_id: int, feedback: Feedback, rules: FeedbackRules, now: datetime
) -> bool:
    """Update the destination's counters; True when this feedback paused it."""
    row = connection.execute(
        select(
            _destinations.c.paused_at,
            _destinations.c.soft_bounce_count,
            _destinations.c.last_soft_bounce_at,
            _destinations.c.bounce_count,
            _destinations.c.complaint_count,
        )
        .where(_destinations.c.id == destination_id)
        .with_for_update()
    ).one()
    values: dict[str, Any] = {}
    pause = False
    if feedback.kind == COMPLAINT:
        values["complaint_count"] = row.complaint_count + 1
    elif feedback.kind == BOUNCE_PERMANENT:
        values["bounce_count"] = row.bounce_count + 1
        pause = True
    else:
        at = feedback.occurred_at or now
        last = row.last_soft_bounce_at
        near = last is not None and abs(at - last) <= rules.soft_bounce_window
        count = row.soft_bounce_count + 1 if near else 1
        values["soft_bounce_count"] = count
        values["last_soft_bounce_at"] = max(at, last) if last is not None else at
        pause = rules.soft_bounce_limit > 0 and count >= rules.soft_bounce_limit
    pause = pause and row.paused_at is None
    if pause:
        values.update(paused_at=now, pause_reason=_pause_reason(feedback, rules), soft_bounce_count=0)
    connection.execute(update(_destinations).where(_destinations.c.id == destination_id).values(**values))
    return pause


def apply_feedback(connection: Connection, feedback: Feedback, rules: FeedbackRules, now: datetime) -> Applied:
    """Apply ``feedback`` in one transaction of ``connection`` and commit it (roll back a duplicate).

    ``connection`` must have no work of its own pending: this commits or rolls back all of it.
    """
    try:
        inserted = connection.execute(
            insert(_events).values(
                feedback_id=_text(feedback.feedback_id, 255),
                recipient=_text(feedback.recipient, EMAIL_MAX_LENGTH),
                kind=feedback.kind,
                sub_type=_text(feedback.sub_type, 100),
                provider_message_id=_text(feedback.message_id, 255) or None,
                detail=_text(feedback.detail, DETAIL_MAX_LENGTH),
                occurred_at=feedback.occurred_at,
                created_at=now,
            )
        )
    except IntegrityError:
        connection.rollback()
        return Applied(feedback, duplicate=True)
    event_id = inserted.inserted_primary_key[0]  # type: ignore[index]  # an executed INSERT has its key
    known, alias_id, destination_id, reply = _copy(connection, feedback)
    if alias_id is not None or destination_id is not None:
        connection.execute(
            update(_events).where(_events.c.id == event_id).values(alias_id=alias_id, destination_id=destination_id)
        )
    paused = _count(connection, destination_id, feedback, rules, now) if destination_id is not None else False
    disabled = False
    # a contact bouncing or complaining about the owner's own reply says nothing of the alias's mail
    if feedback.kind == COMPLAINT and alias_id is not None and rules.complaint_action == "disable" and reply is None:
        switched = connection.execute(
            update(_aliases)
            .where(_aliases.c.id == alias_id, _aliases.c.enabled == true(), _aliases.c.deleted_at.is_(None))
            .values(enabled=False, disabled_reason=_disabled_reason(feedback, now))
        )
        disabled = switched.rowcount == 1
    connection.commit()
    return Applied(feedback, False, known, alias_id, destination_id, paused, disabled, reply)


class FeedbackStore:
    """:func:`apply_feedback` on a connection from ``engine`` per feedback (the Lambda and the queue
    worker): Core only, no ORM session."""

    def __init__(self, engine: Engine, rules: FeedbackRules, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self.rules = rules
        self._now = clock

    def apply(self, feedback: Feedback) -> Applied:
        """Raises :class:`DatabaseUnavailable` (retryable) when the database cannot be reached."""
        with database_errors(), connect(self._engine) as connection:
            return apply_feedback(connection, feedback, self.rules, self._now())
