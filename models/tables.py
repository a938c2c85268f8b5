"""The tables the forwarder's SQL touches, as SQLAlchemy Core ``Table`` objects on the schema's one
:data:`metadata` (``models.Base.metadata`` is this object).

The ORM classes map onto these (``__table__ = tables.aliases``), so each column is written once,
here; importing this module loads SQLAlchemy Core only, so the forward path's SQL (its Lambda cold
start pays for every import, issue 15) uses the tables without ``sqlalchemy.orm``. Python-side
defaults (``default=utcnow``...) are on the columns, so Core inserts get them as ORM ones do.
The other tables (sessions, tokens...) are defined by their models.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import DDLCompiler

from models.columns import BigIntId, UTCDateTime, utcnow
from models.limits import (
    DISPLAY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    LABEL_MAX_LENGTH,
    RAW_KEY_MAX_LENGTH,
    REASON_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
)

#: Deterministic constraint/index names, so that Alembic migrations name
#: things the same way on every backend and can later drop/alter them by name
#: (SQLite batch mode in particular needs named constraints).  All generated
#: names stay below PostgreSQL's 63-character identifier limit.
NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Table options for MariaDB/MySQL (ignored by other dialects).
#:
#: ``utf8mb4_bin`` instead of the server default ``utf8mb4_general_ci``: the
#: default collation is case- *and accent*-insensitive, which would make the
#: unique constraints behave differently from PostgreSQL/SQLite (e.g. aliases
#: ``jose@`` and ``josé@`` would collide, and two Message-IDs differing only in
#: case would be treated as the same delivery).  Case-insensitivity of
#: addresses is instead enforced everywhere by storing them lowercase.
MYSQL_OPTIONS: Final[dict[str, str]] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

#: The key of a table's ``info`` that holds its :data:`MYSQL_OPTIONS`.
MYSQL_OPTIONS_INFO: Final = "othermail_mysql_options"

#: What every table passes to ``Table`` (in ``__table_args__``): the MySQL options, kept in the
#: table's ``info`` rather than given as ``mysql_*`` keywords. SQLAlchemy validates ``mysql_*``
#: keywords when the table is defined by importing the whole MySQL dialect (36 ms), which the
#: forwarder Lambda on PostgreSQL or SQLite never uses (issue 15); :func:`_create_table_on_mysql`
#: hands them to the MySQL dialect when it compiles a CREATE TABLE, so the DDL is the same as with
#: the keywords (tests/models/test_lazy_dialects.py). Migrations spell their options out themselves.
MYSQL_TABLE_OPTIONS: Final[dict[str, Any]] = {"info": {MYSQL_OPTIONS_INFO: MYSQL_OPTIONS}}


@compiles(CreateTable, "mysql")
@compiles(CreateTable, "mariadb")
def _create_table_on_mysql(create: CreateTable, compiler: DDLCompiler, **kw: Any) -> str:
    """CREATE TABLE on MariaDB/MySQL, with the table's :data:`MYSQL_OPTIONS` as its ``mysql_*``
    dialect keywords (set once; the MySQL dialect is loaded by then, so nothing more is imported)."""
    table = create.element
    for key, value in table.info.get(MYSQL_OPTIONS_INFO, {}).items():
        table.kwargs.setdefault(key, value)
    return compiler.visit_create_table(create, **kw)


#: The whole schema (``models.Base.metadata``).
metadata = MetaData(naming_convention=NAMING_CONVENTION)

DISABLED_REASON_MAX_LENGTH = 200
PAUSE_REASON_MAX_LENGTH = 500
#: What an SES bounce or complaint said (its diagnostic), cut to this.
DETAIL_MAX_LENGTH = 500
#: A rate-limit key, e.g. ``"signin:203.0.113.7"``.
KEY_MAX_LENGTH = 200
#: Longest domain name in presentation form (RFC 1035: 255 octets on the wire).
DOMAIN_MAX_LENGTH = 253
PROBLEM_MAX_LENGTH = 500
#: Stored digests and sealed texts: hex HMAC-SHA256, and ``id:base64`` of a capped text.
DIGEST_LENGTH = 64
SEALED_MAX_LENGTH = 512
REVERSE_LOCAL_MAX_LENGTH = 32
#: ``destination_key`` of a message-level outcome (unknown alias, rejected
#: before fan-out, ...), i.e. a row that concerns no particular destination.
MESSAGE_LEVEL = 0


def _created() -> Column[Any]:
    return Column("created_at", UTCDateTime, nullable=False, default=utcnow)


def _counter(name: str, start: int = 0) -> Column[int]:
    return Column(name, Integer, nullable=False, default=start, server_default=text(str(start)))


def _word(name: str, length: int, value: str) -> Column[str]:
    """A short text column that defaults to ``value`` in Python and on the server."""
    return Column(name, String(length), nullable=False, default=value, server_default=value)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False, unique=True),
    Column("password_hash", String(255)),
    Column("is_admin", Boolean, nullable=False, default=False, server_default=false()),
    _created(),
    Column("deleted_at", UTCDateTime),
    Column("password_changed_at", UTCDateTime),
    Column("email_verified_at", UTCDateTime),
    _word("sender_mode", 10, "any"),
    _word("display_format", 20, "name-and-address"),
    _word("unsubscribe_action", 20, "disable-alias"),
    Column("totp_secret", String(255)),
    Column("totp_enabled_at", UTCDateTime),
    Column("totp_last_step", Integer),
    **MYSQL_TABLE_OPTIONS,
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address", String(EMAIL_MAX_LENGTH), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), index=True),
    Column("enabled", Boolean, nullable=False, default=True, server_default=true()),
    Column("disabled_reason", String(DISABLED_REASON_MAX_LENGTH)),
    Column("expires_at", UTCDateTime),
    Column("idle_days", Integer),
    Column("max_messages", Integer),
    _counter("message_count"),
    _counter("forwarded_count"),
    _counter("blocked_count"),
    _created(),
    Column("last_used_at", UTCDateTime),
    Column("deleted_at", UTCDateTime),
    Column("label", String(LABEL_MAX_LENGTH)),
    Column("note", Text),
    _word("expired_action", 10, "drop"),
    _word("sender_mode", 10, "any"),
    _word("display_name", DISPLAY_NAME_MAX_LENGTH, ""),
    CheckConstraint("expired_action IN ('drop', 'reject')", name="expired_action"),
    **MYSQL_TABLE_OPTIONS,
)

destinations = Table(
    "destinations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False),
    Column("verified_at", UTCDateTime),
    _created(),
    Column("paused_at", UTCDateTime),
    _word("pause_reason", PAUSE_REASON_MAX_LENGTH, ""),
    _counter("bounce_count"),
    _counter("soft_bounce_count"),
    Column("last_soft_bounce_at", UTCDateTime),
    _counter("complaint_count"),
    UniqueConstraint("user_id", "email"),
    **MYSQL_TABLE_OPTIONS,
)

#: Which destinations an alias forwards to.  Rows disappear with either side.
alias_destinations = Table(
    "alias_destinations",
    metadata,
    Column("alias_id", ForeignKey("aliases.id", ondelete="CASCADE"), primary_key=True),
    Column("destination_id", ForeignKey("destinations.id", ondelete="CASCADE"), primary_key=True),
    # The primary key only serves lookups by alias_id; this one serves
    # "which aliases use this destination" and the cascade on deleting one.
    Index(None, "destination_id"),
    **MYSQL_TABLE_OPTIONS,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigIntId, primary_key=True),
    Column("inbound_message_id", String(255), nullable=False),
    #: The alias address as received, normalized to lowercase.
    Column("recipient", String(EMAIL_MAX_LENGTH), nullable=False),
    Column("alias_id", Integer, ForeignKey("aliases.id", ondelete="SET NULL")),
    # Indexed so that deleting a destination (SET NULL) does not scan the log.
    Column("destination_id", Integer, ForeignKey("destinations.id", ondelete="SET NULL"), index=True),
    _counter("destination_key", MESSAGE_LEVEL),
    Column("outcome", String(40), nullable=False),
    _word("reason", REASON_MAX_LENGTH, ""),
    Column("mail_from", String(EMAIL_MAX_LENGTH)),
    Column("subject", String(SUBJECT_MAX_LENGTH)),
    Column("bytes_in", Integer),
    Column("bytes_out", Integer),
    #: The message id SES or the SMTP relay returned for the forwarded copy.
    Column("provider_message_id", String(255)),
    _counter("attempts", 1),
    #: Where the raw inbound message is kept (a key of the mail store, S3 or local).
    Column("raw_key", String(RAW_KEY_MAX_LENGTH)),
    #: When the owner released this quarantined message to its destinations.
    Column("released_at", UTCDateTime),
    Column("received_at", UTCDateTime),
    _created(),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("inbound_message_id", "recipient", "destination_key"),
    Index(None, "alias_id", "created_at"),
    # SES feedback names the forwarded copy by the message id SES gave it
    Index(None, "provider_message_id"),
    **MYSQL_TABLE_OPTIONS,
)

#: SES feedback on forwarded mail: one bounce or complaint for one recipient of a forwarded copy
#: (models/feedback.py). The unique ``(feedback_id, recipient)`` makes applying it idempotent.
feedback_events = Table(
    "feedback_events",
    metadata,
    Column("id", BigIntId, primary_key=True),
    Column("feedback_id", String(255), nullable=False),
    #: The bounced or complaining address, lowercase.
    Column("recipient", String(EMAIL_MAX_LENGTH), nullable=False),
    Column("kind", String(20), nullable=False),
    _word("sub_type", 100, ""),
    Column("provider_message_id", String(255), index=True),
    Column("alias_id", Integer, ForeignKey("aliases.id", ondelete="SET NULL"), index=True),
    Column("destination_id", Integer, ForeignKey("destinations.id", ondelete="SET NULL"), index=True),
    _word("detail", DETAIL_MAX_LENGTH, ""),
    Column("occurred_at", UTCDateTime),
    _created(),
    UniqueConstraint("feedback_id", "recipient"),
    CheckConstraint("kind IN ('bounce-permanent', 'bounce-transient', 'complaint')", name="kind"),
    **MYSQL_TABLE_OPTIONS,
)

rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    Column("key", String(KEY_MAX_LENGTH), primary_key=True),
    Column("window_start", BigInteger, primary_key=True, autoincrement=False, index=True),
    _counter("count"),
    **MYSQL_TABLE_OPTIONS,
)

user_domains = Table(
    "user_domains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    # Not unique: several accounts may claim a name none of them has proved (issue 12.11).
    Column("name", String(DOMAIN_MAX_LENGTH), nullable=False, index=True),
    # ``name`` once this claim's ownership TXT record verified, NULL before (models/user_domains.py).
    Column("owned_name", String(DOMAIN_MAX_LENGTH), unique=True),
    Column("verification_token", String(64), nullable=False),
    _word("status", 10, "pending"),
    Column("dkim_tokens", Text),
    Column("ses_identity_created_at", UTCDateTime),
    Column("verified_at", UTCDateTime),
    Column("last_checked_at", UTCDateTime),
    Column("failing_since", UTCDateTime),
    Column("last_problem", String(PROBLEM_MAX_LENGTH)),
    Column("catch_all", Boolean, nullable=False, default=False, server_default=false()),
    _created(),
    CheckConstraint("status IN ('pending', 'verified', 'failing', 'suspended')", name="status"),
    UniqueConstraint("user_id", "name"),
    **MYSQL_TABLE_OPTIONS,
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alias_id", Integer, ForeignKey("aliases.id", ondelete="CASCADE"), nullable=False),
    # Random, lowercase, never derived from the address; unique over every domain.
    Column("reverse_local", String(REVERSE_LOCAL_MAX_LENGTH), nullable=False, unique=True),
    Column("address_digest", String(DIGEST_LENGTH), nullable=False),
    Column("address_sealed", String(SEALED_MAX_LENGTH), nullable=False),
    _word("name_sealed", SEALED_MAX_LENGTH, ""),
    _word("origin", 10, "forward"),
    Column("blocked", Boolean, nullable=False, default=False, server_default=false()),
    _counter("forwarded_count"),
    _counter("replied_count"),
    _counter("blocked_count"),
    Column("last_seen_at", UTCDateTime),
    _created(),
    UniqueConstraint("alias_id", "address_digest"),
    CheckConstraint("origin IN ('forward', 'user')", name="origin"),
    **MYSQL_TABLE_OPTIONS,
)

message_links = Table(
    "message_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alias_id", Integer, ForeignKey("aliases.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), index=True),
    Column("seen_digest", String(DIGEST_LENGTH), nullable=False),
    # The seen id itself, sealed: what ``othermail keys rotate`` re-digests under a new key.
    Column("seen_sealed", Text, nullable=False),
    Column("original_sealed", Text, nullable=False),
    # ``forward`` or ``reply`` (models/contacts.py). No Python-side default: an INSERT that names
    # no kind works at revision 0007 too.
    Column("kind", String(8), nullable=False, server_default="forward"),
    _created(),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    UniqueConstraint("alias_id", "seen_digest"),
    **MYSQL_TABLE_OPTIONS,
)

#: What a sender rule does, and what it matches (sender_rules.action and .kind).
RULE_ACTIONS = ("block", "allow")
RULE_KINDS = ("address", "domain", "empty-sender")

#: Block or allow an address, a domain (with its subdomains) or the empty sender, for one alias or
#: (``alias_id`` NULL) every alias of the account (models/contacts.py's SenderRule).
sender_rules = Table(
    "sender_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("alias_id", Integer, ForeignKey("aliases.id", ondelete="CASCADE"), index=True),
    Column("action", String(5), nullable=False),
    Column("kind", String(12), nullable=False),
    # Lowercase address or domain; "" for the empty sender.
    _word("value", EMAIL_MAX_LENGTH, ""),
    _created(),
    CheckConstraint("action IN ('block', 'allow')", name="action"),
    CheckConstraint("kind IN ('address', 'domain', 'empty-sender')", name="kind"),
    **MYSQL_TABLE_OPTIONS,
)
