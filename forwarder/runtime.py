"""The composition root: the only code that turns settings into adapters.

Every host asks it for what it runs on:

    forwarder/hosts/lambda_handler.py   Runtime.build(settings, aws_session=..., ses_inbound=True)
    forwarder/hosts/queue_worker.py     (through the CLI's ``othermail worker``, as the Lambda)
    forwarder/hosts/onebox.py           Runtime.build(settings, sender=...), after migrating the schema
    forwarder/cli/                      CliContext.runtime()
    web/                                create_app(..., runtime=Runtime.build(settings))

Each part is built on first use and then kept, so a CLI command that only reads the database never
makes an outbox folder or an AWS client, and nothing connects while the runtime is built: the
engine connects on its first query, boto3 clients on their first call, the SMTP relay on its first
send. Tests pass any part ready-made instead of monkeypatching:
``Runtime.build(settings, sender=MemorySender(), clock=lambda: NOW)``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from forwarder.errors import SettingsError
from forwarder.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from forwarder.adapters.aws.clients import LazySession
    from forwarder.adapters.aws.s3 import S3Store
    from forwarder.adapters.inbound_auth import Authenticator
    from forwarder.adapters.local.spool import Spool
    from forwarder.adapters.sealing import Sealer
    from forwarder.adapters.sql.contacts import SqlContactBook
    from forwarder.adapters.sql.directory import SqlDirectory
    from forwarder.adapters.sql.feedback_store import FeedbackStore
    from forwarder.flows.forward import Forwarder
    from forwarder.flows.notices import Notifier
    from forwarder.flows.outcome_log import OutcomeLog
    from forwarder.flows.reply import Replier
    from forwarder.flows.two_way import TwoWayForward
    from forwarder.ops.metrics import Metrics
    from forwarder.ports import Bouncer, Clock, Sender, WritableStore

#: The parts a caller may hand in ready-made (the names of the cached properties below).
PARTS = frozenset(
    {
        "engine", "sessions", "clock", "aws_session", "aws_clients", "sender", "store", "directory", "metrics",
        "outcome_log", "notifier", "bouncer", "feedback", "forwarder", "spool", "authenticator",
        "sealer", "contacts", "unsubscribe_keys",
    }
)  # fmt: skip


class Runtime:
    """The settings and everything built from them; see the module docstring."""

    def __init__(
        self, settings: Settings, *, ses_inbound: bool = False, ping_every_checkout: bool = False, **parts: Any
    ) -> None:
        unknown = sorted(set(parts) - PARTS)
        if unknown:
            raise TypeError(f"Runtime.build() got unknown parts: {', '.join(unknown)}")
        self.settings = settings
        #: Raw mail arrives through SES (the Lambda and the queue worker): it is read from the S3
        #: bucket SES writes to, and reject-mode expired aliases are bounced with SES SendBounce.
        self.ses_inbound = ses_inbound
        #: The web app: a request has no retry of its own, so a server connection is pinged at every
        #: checkout (the forwarder's directory re-runs a transaction on a dead connection instead).
        self.ping_every_checkout = ping_every_checkout
        # a part handed in is found in the instance dict before its cached_property runs
        self.__dict__.update(parts)

    @classmethod
    def build(cls, settings: Settings, **parts: Any) -> Runtime:
        """The runtime for ``settings``, with ``parts`` handed in ready-made."""
        return cls(settings, **parts)

    def prepare_data_dir(self) -> None:
        """Make the data folder an embedded SQLite database lives in."""
        if self.settings.resolved_database_url.startswith("sqlite:///"):
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)

    # --- the database ---------------------------------------------------------------------------

    @cached_property
    def engine(self) -> Engine:
        from models.engine import make_engine  # SQLAlchemy Core only, not the ORM models

        extra = {"pool_pre_ping": True} if self.ping_every_checkout else {}
        return make_engine(self.settings.resolved_database_url, **self.settings.engine_options, **extra)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        from models.engine import make_session_factory

        return make_session_factory(self.engine)

    @cached_property
    def clock(self) -> Clock:
        from models.columns import utcnow

        return utcnow

    @cached_property
    def directory(self) -> SqlDirectory:
        from forwarder.adapters.sql.directory import SqlDirectory

        return SqlDirectory(
            self.engine,  # Core connections only: no ORM session factory (sqlalchemy.orm) for it
            timedelta(seconds=self.settings.claim_timeout_seconds),
            clock=self.clock,
            limits=self.settings.mail_limits,
        )

    @cached_property
    def feedback(self) -> FeedbackStore:
        from forwarder.adapters.sql.feedback_store import FeedbackRules, FeedbackStore

        # Core connections only, like the directory: a Lambda's first bounce loads no sqlalchemy.orm
        return FeedbackStore(self.engine, FeedbackRules.from_settings(self.settings), self.clock)

    @cached_property
    def sealer(self) -> Sealer:
        """Seals contacts' addresses and the Message-ID map: ``OTHERMAIL_CONTACT_KEYS``, else (not on an
        SES ingress, whose hosts share no folder) a key file made once in the data folder."""
        from forwarder.adapters.sealing import Sealer, key_file
        from forwarder.errors import SealError

        if self.settings.contact_keys:
            return Sealer(self.settings.contact_keys)
        if self.ses_inbound:
            raise SettingsError("OTHERMAIL_CONTACT_KEYS must be set here (othermail keys new makes an entry)")
        path = self.settings.data_dir / "contact-keys"
        try:
            return Sealer(key_file(path))
        except (SealError, OSError) as exc:
            raise SettingsError(f"{path} must hold id:key entries, or set OTHERMAIL_CONTACT_KEYS: {exc}") from None

    @cached_property
    def unsubscribe_keys(self) -> tuple[bytes, ...]:
        """The one-click unsubscribe signing keys (forwarder/flows/unsubscribe.py), current first: one
        derived from each contact key, so a rotation keeps older mail's links working."""
        from forwarder.flows.unsubscribe import KEY_PURPOSE

        return tuple(bytes.fromhex(d) for d in self.sealer.digests(KEY_PURPOSE))

    @cached_property
    def contacts(self) -> SqlContactBook:
        """Two-way aliases' contacts, Message-ID map and sender rules (the ContactBook port)."""
        from forwarder.adapters.sql.contacts import SqlContactBook

        return SqlContactBook(self.engine, self.sealer, self.clock, self.settings.thread_days)

    # --- AWS, the sender and the mail store -----------------------------------------------------

    @cached_property
    def aws_session(self) -> Any:
        """A ``boto3.session.Session`` for ``OTHERMAIL_AWS_REGION`` (credentials from the usual chain)."""
        import boto3

        return boto3.session.Session(region_name=self.settings.aws_region)

    @cached_property
    def aws_clients(self) -> LazySession:
        """The AWS clients the adapters use, one per service, each made from :attr:`aws_session` on
        its first call and then kept (forwarder/adapters/aws/clients.py): the Lambda makes each
        once per container, and only those its events use; botocore is imported with the first.
        They come from botocore alone (no boto3 import on a cold start), unless a session was
        handed in (tests, the Lambda's secrets session): then from that one."""
        from forwarder.adapters.aws.clients import BotocoreClients, LazySession

        if "aws_session" in self.__dict__:
            return LazySession(lambda service: self.aws_session.client(service))
        return LazySession(BotocoreClients(self.settings.aws_region))

    @cached_property
    def sender(self) -> Sender:
        from forwarder.adapters.outbound import build_sender

        aws = self.aws_clients if self.settings.sender == "ses" else None
        return build_sender(self.settings, aws_session=aws)

    @cached_property
    def store(self) -> WritableStore:
        """Where raw inbound mail is kept: the bucket SES writes to for an SES ingress, otherwise
        what ``OTHERMAIL_STORE`` names (a local folder, or S3)."""
        if self.ses_inbound:
            return self.ses_bucket
        from forwarder.adapters.stores import LocalStore

        if self.settings.store == "s3":
            return self.ses_bucket
        return LocalStore(self.settings.store_dir)

    @cached_property
    def spool(self) -> Spool:
        """The one box's durable hand-off between an SMTP "250" and the forwarder."""
        from forwarder.adapters.local.spool import Spool

        return Spool(self.settings.data_dir / "spool", self.store)

    @cached_property
    def authenticator(self) -> Authenticator:
        """SPF, DKIM and DMARC of mail the SMTP listener receives (``OTHERMAIL_INBOUND_AUTH``); its
        Authentication-Results name the first mail domain, as the SMTP banner does."""
        from forwarder.adapters.inbound_auth import build_authenticator

        return build_authenticator(self.settings, self.settings.domains[0])

    @cached_property
    def ses_bucket(self) -> S3Store:
        from forwarder.adapters.aws.s3 import S3Store

        if not self.settings.s3_bucket:
            if self.ses_inbound:
                raise SettingsError("OTHERMAIL_S3_BUCKET must name the bucket the SES receipt rule writes to")
            raise SettingsError("OTHERMAIL_STORE=s3 needs OTHERMAIL_S3_BUCKET")
        return S3Store(self.aws_clients.client("s3"), self.settings.s3_bucket)

    @cached_property
    def bouncer(self) -> Bouncer | None:
        """SES SendBounce for an SES ingress; None elsewhere (the one box refuses at RCPT instead)."""
        if not self.ses_inbound:
            return None
        from forwarder.flows.expired_reject import SesBouncer

        return SesBouncer(self.aws_clients.client("ses"))

    # --- the flows ------------------------------------------------------------------------------

    @cached_property
    def metrics(self) -> Metrics:
        from forwarder.ops.metrics import Metrics

        return Metrics()

    @cached_property
    def outcome_log(self) -> OutcomeLog:
        from forwarder.flows.outcome_log import OutcomeLog

        return OutcomeLog(metrics=self.metrics)

    @cached_property
    def notifier(self) -> Notifier | None:
        """Notices to owners (None with ``OTHERMAIL_NOTICES=false``)."""
        from forwarder.flows.notices import build_notifier

        return build_notifier(self.settings, self.engine, self.sender)

    @cached_property
    def forwarder(self) -> Forwarder:
        return self._forwarder(self.sender)

    def preview_forwarder(self) -> Forwarder:
        """A forwarder that resolves, decides and rewrites but cannot send (``--dry-run``)."""
        return self._forwarder(None)

    def _forwarder(self, sender: Sender | None) -> Forwarder:
        from forwarder.flows.forward import Forwarder

        return Forwarder(
            self.directory,
            sender,
            self.settings.policy,
            self.clock,
            self.settings.max_bytes,
            self.outcome_log,
            self.notifier if sender is not None else None,
            bouncer=self.bouncer,
            replies=self._replier(sender) if sender is not None else None,
            two_way=self._two_way(),
        )

    def _two_way(self) -> TwoWayForward | None:
        """Two-way forwarding (``OTHERMAIL_TWO_WAY``), when contact keys can be had: on an SES
        ingress only from ``OTHERMAIL_CONTACT_KEYS`` (its hosts share no folder for a key file),
        so a Lambda without them goes on forwarding one way."""
        if not self.settings.two_way or (self.ses_inbound and not self.settings.contact_keys):
            return None
        from forwarder.flows.two_way import TwoWayForward

        return TwoWayForward(
            lambda: self.contacts,
            lambda: self.unsubscribe_keys,
            lambda: (*self.settings.domains, *self.directory.user_domain_names()),
            self.settings.public_url,
        )

    def _replier(self, sender: Sender) -> Replier:
        """Two-way aliases: the owner's mail to a contact's reverse address, sent from the alias."""
        from forwarder.flows.reply import Replier

        return Replier(
            lambda: self.contacts, self.directory, sender, self.clock, self.settings.max_bytes, self.notifier
        )

    def close(self) -> None:
        """Release what was built: the sender's connections (an SMTP relay) and the database pool."""
        sender = self.__dict__.get("sender")
        closer = getattr(sender, "close", None)
        if closer is not None:
            closer()
        engine = self.__dict__.get("engine")
        if engine is not None:
            engine.dispose()
