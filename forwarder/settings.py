"""Typed settings, read once from the environment at the edge (CLI start, Lambda cold start).

Nothing in othermail reads ``os.environ`` anywhere else; everything else receives a ``Settings``.
Every variable is listed in docs/configuration.md, which the docs build checks against this class.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from forwarder.adapters.smtp.limits import SmtpLimits
from forwarder.core import SESV1_MAX_BYTES, SESV2_MAX_BYTES, Policy
from forwarder.errors import SettingsError
from forwarder.flows.mail_limits import MailLimits

PREFIX = "OTHERMAIL_"

#: Messages forwarded per alias and per user (all its aliases), per fixed UTC hour and day: far
#: above what a person's mail needs, low enough that a flood through one alias or account cannot
#: turn into complaints that hurt the SES account's reputation (docs/limits.md).
DEFAULT_MAIL_LIMITS = MailLimits(alias_per_hour=100, alias_per_day=500, user_per_hour=200, user_per_day=1000)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{PREFIX}{name} must be at least {minimum}, not {value}")
    return value


def _public_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise SettingsError(f"{PREFIX}PUBLIC_URL must be the web app's http(s) address, not {value!r}")
    return url


def _database_url(value: str) -> str:
    """``value`` unchanged once SQLAlchemy parses it and has its dialect and driver (nothing
    connects); the error names the variable and never shows the password."""
    if not value:
        return value
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    name = f"{PREFIX}DATABASE_URL"
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise SettingsError(
            f"{name} cannot be parsed as an SQLAlchemy URL (dialect+driver://user:password@host/database)"
        ) from None
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise SettingsError(f"{name}: SQLAlchemy has no database dialect or driver named {url.drivername!r}") from None
    except ImportError as exc:
        raise SettingsError(
            f"{name}: the driver of {url.drivername!r} is not installed ({exc.name or exc}); "
            "pip install 'othermail[postgres]' or 'othermail[mysql]'"
        ) from None
    return value


#: Settings fields whose values ``repr`` never shows.
_SECRET_FIELD = re.compile(r"password|token|secret|credential|contact_keys")


def _redacted_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(value).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "***"


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(PREFIX + name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{PREFIX}{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _smtp_limits(env: Mapping[str, str]) -> SmtpLimits:
    default = SmtpLimits()
    return SmtpLimits(  # 0: no cap (no delay for the tarpit)
        failed_rcpt_per_session=_int(env, "SMTP_MAX_FAILED_RCPT", default.failed_rcpt_per_session),
        failed_rcpt_per_ip=_int(env, "SMTP_MAX_FAILED_RCPT_PER_IP", default.failed_rcpt_per_ip),
        failed_rcpt_window_seconds=_int(
            env, "SMTP_FAILED_RCPT_WINDOW_SECONDS", default.failed_rcpt_window_seconds, minimum=1
        ),
        failed_rcpt_per_network=_int(env, "SMTP_MAX_FAILED_RCPT_PER_NETWORK", default.failed_rcpt_per_network),
        failed_rcpt_global=_int(env, "SMTP_FAILED_RCPT_GLOBAL", default.failed_rcpt_global),
        tarpit_step_ms=_int(env, "SMTP_TARPIT_STEP_MS", default.tarpit_step_ms),
        tarpit_max_ms=_int(env, "SMTP_TARPIT_MAX_MS", default.tarpit_max_ms),
        max_sessions=_int(env, "SMTP_MAX_SESSIONS", default.max_sessions),
        max_sessions_per_ip=_int(env, "SMTP_MAX_SESSIONS_PER_IP", default.max_sessions_per_ip),
        spill_bytes=_int(env, "SMTP_SPILL_BYTES", default.spill_bytes, minimum=1024),
        session_seconds=_int(env, "SMTP_SESSION_SECONDS", int(default.session_seconds)),
        data_seconds=_int(env, "SMTP_DATA_SECONDS", int(default.data_seconds)),
    )


def _contact_keys(env: Mapping[str, str]) -> tuple[tuple[str, bytes], ...]:
    """OTHERMAIL_CONTACT_KEYS: ``id:key,id2:key2`` (the first seals; docs/configuration.md)."""
    from forwarder.adapters.sealing import parse_keys
    from forwarder.errors import SealError

    raw = (env.get(PREFIX + "CONTACT_KEYS") or "").strip()
    if not raw:
        return ()
    try:
        return tuple(parse_keys(raw))
    except SealError as exc:
        raise SettingsError(
            f"{PREFIX}CONTACT_KEYS must be id:key entries (othermail keys new): {exc.args[0]}"
        ) from None


def _tls_pair(env: Mapping[str, str]) -> tuple[Path | None, Path | None]:
    cert = (env.get(PREFIX + "SMTP_TLS_CERT") or "").strip()
    key = (env.get(PREFIX + "SMTP_TLS_KEY") or "").strip()
    if bool(cert) != bool(key):
        missing = "SMTP_TLS_KEY" if cert else "SMTP_TLS_CERT"
        given = "SMTP_TLS_CERT" if cert else "SMTP_TLS_KEY"
        raise SettingsError(
            f"{PREFIX}{missing} must be set too: STARTTLS needs both {PREFIX}SMTP_TLS_CERT and "
            f"{PREFIX}SMTP_TLS_KEY, and {PREFIX}{given} is set alone"
        )
    return (Path(cert), Path(key)) if cert else (None, None)


def _inbound_auth(env: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
    """OTHERMAIL_INBOUND_AUTH and the trusted relay it may name (docs/operator/one-box.md, "Authentication")."""
    import ipaddress

    mode = _choice(env, "INBOUND_AUTH", "own", ("own", "trusted-relay", "off"))
    authserv_id = (env.get(PREFIX + "TRUSTED_AUTHSERV_ID") or "").strip().lower()
    if any(c.isspace() or c in ';()"' for c in authserv_id):
        raise SettingsError(f"{PREFIX}TRUSTED_AUTHSERV_ID must be one authserv-id (a host name), not {authserv_id!r}")
    relays: list[str] = []
    for item in (env.get(PREFIX + "TRUSTED_RELAYS") or "").split(","):
        if item.strip():
            try:
                relays.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}TRUSTED_RELAYS must be comma-separated IP addresses or CIDR "
                    f"networks; {item.strip()!r} is neither"
                ) from None
    if mode == "trusted-relay":
        missing = [
            name for name, value in (("TRUSTED_AUTHSERV_ID", authserv_id), ("TRUSTED_RELAYS", relays)) if not value
        ]
        if missing:
            raise SettingsError(
                f"{PREFIX}INBOUND_AUTH=trusted-relay needs " + " and ".join(PREFIX + name for name in missing)
            )
    return mode, authserv_id, tuple(relays)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    domains: tuple[str, ...] = ("othermail.example",)
    ses_api: str = "v2"
    aws_region: str = "us-east-1"
    s3_bucket: str = ""
    s3_prefix: str = "inbound/"
    ses_configuration_set: str = ""
    sender: str = "ses"
    outbox: Path = Path("var/outbox")
    policy: Policy = field(default_factory=Policy)
    claim_timeout_seconds: int = 900
    mail_limits: MailLimits = DEFAULT_MAIL_LIMITS
    # outbound SMTP relay (OTHERMAIL_SENDER=smtp)
    relay_host: str = ""
    relay_port: int = 587
    relay_security: str = "starttls"
    relay_username: str = ""
    relay_password: str = ""
    relay_timeout_seconds: int = 30
    # inbound SMTP listener and where it keeps raw mail (one-box mode)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_max_bytes: int = 30 * 1024 * 1024
    smtp_limits: SmtpLimits = field(default_factory=SmtpLimits)
    # STARTTLS on the listener: a PEM certificate (chain) and its key, both or neither
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    store: str = "local"
    store_dir: Path = Path("var/mail")
    # queue worker (EC2 mode: SES -> S3 -> SNS -> SQS)
    queue_url: str = ""
    queue_wait_seconds: int = 20
    # one box: bearer token for /metrics; empty: /metrics answers loopback only
    metrics_token: str = field(default="", repr=False)
    # SES feedback (forwarder/adapters/sql/feedback_store.py): soft bounces that pause a destination (0: never)
    # when each came within the window of the one before; what a complaint does to its alias
    soft_bounce_limit: int = 3
    soft_bounce_window_days: int = 7
    complaint_action: str = "disable"
    # kept mail: days the store keeps raw messages (downloads, quarantine); notices to users
    keep_days: int = 14
    notices: bool = True
    #: The web app's address as users reach it ("https://mail.example.org"), for links in notices.
    public_url: str = ""
    # one box: how mail that arrives by SMTP is authenticated (forwarder/adapters/inbound_auth)
    inbound_auth: str = "own"
    trusted_authserv_id: str = ""
    trusted_relays: tuple[str, ...] = ()
    #: HOST[:PORT] of the name server the inbound checks ask; empty: the system's.
    inbound_auth_resolver: str = ""
    #: Keys that seal contacts' addresses and the Message-ID map, ``(id, 32 bytes)``, the first current;
    #: empty: the one box keeps one in <data dir>/contact-keys (forwarder/runtime.py).
    contact_keys: tuple[tuple[str, bytes], ...] = ()
    #: Days a reply keeps finding the thread it answers (message_links rows expire after them).
    thread_days: int = 180

    def __repr__(self) -> str:
        """Every field but secrets: the database URL without its password, and ``'***'`` for each
        field named like a password, token or secret (when set), so logs and tracebacks leak none."""
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "database_url" and value:
                value = _redacted_url(value)
            elif _SECRET_FIELD.search(item.name) and value:
                value = "***"
            shown.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def max_bytes(self) -> int:
        """The size limit of the configured SES API (see SES_FACTS.md)."""
        return SESV1_MAX_BYTES if self.ses_api == "v1" else SESV2_MAX_BYTES

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'othermail.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, default_sender: str = "ses") -> Settings:
        """``default_sender`` is the mode's default: ``ses`` for the Lambda, ``outbox`` on one box."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get(PREFIX + "DATA_DIR") or "var")
        domains = tuple(
            d.strip().lower() for d in (env.get(PREFIX + "DOMAINS") or "othermail.example").split(",") if d.strip()
        )
        if not domains:
            raise SettingsError(f"{PREFIX}DOMAINS must name at least one domain")
        prefix = env.get(PREFIX + "S3_PREFIX", "inbound/")
        return cls(
            data_dir=data_dir,
            database_url=_database_url(env.get(PREFIX + "DATABASE_URL", "")),
            domains=domains,
            ses_api=_choice(env, "SES_API", "v2", ("v2", "v1")),
            aws_region=env.get(PREFIX + "AWS_REGION") or env.get("AWS_REGION") or "us-east-1",
            s3_bucket=env.get(PREFIX + "S3_BUCKET", ""),
            s3_prefix=prefix,
            ses_configuration_set=env.get(PREFIX + "SES_CONFIGURATION_SET", ""),
            sender=_choice(env, "SENDER", default_sender, ("ses", "outbox", "smtp")),
            outbox=Path(env.get(PREFIX + "OUTBOX") or data_dir / "outbox"),
            policy=Policy(
                drop_spam=_bool(env, "DROP_SPAM", True),
                drop_dmarc_reject=_bool(env, "DROP_DMARC_REJECT", True),
                drop_bounces=_bool(env, "DROP_BOUNCES", True),
                drop_auto_replies=_bool(env, "DROP_AUTO_REPLIES", True),
            ),
            claim_timeout_seconds=_int(env, "CLAIM_TIMEOUT_SECONDS", 900, minimum=1),
            mail_limits=MailLimits(  # 0: no limit
                alias_per_hour=_int(env, "LIMIT_ALIAS_PER_HOUR", DEFAULT_MAIL_LIMITS.alias_per_hour),
                alias_per_day=_int(env, "LIMIT_ALIAS_PER_DAY", DEFAULT_MAIL_LIMITS.alias_per_day),
                user_per_hour=_int(env, "LIMIT_USER_PER_HOUR", DEFAULT_MAIL_LIMITS.user_per_hour),
                user_per_day=_int(env, "LIMIT_USER_PER_DAY", DEFAULT_MAIL_LIMITS.user_per_day),
            ),
            relay_host=env.get(PREFIX + "RELAY_HOST", ""),
            relay_port=_int(env, "RELAY_PORT", 587, minimum=1),
            relay_security=_choice(env, "RELAY_SECURITY", "starttls", ("starttls", "tls", "none")),
            relay_username=env.get(PREFIX + "RELAY_USERNAME", ""),
            relay_password=env.get(PREFIX + "RELAY_PASSWORD", ""),
            relay_timeout_seconds=_int(env, "RELAY_TIMEOUT_SECONDS", 30, minimum=1),
            smtp_host=env.get(PREFIX + "SMTP_HOST") or "127.0.0.1",
            smtp_port=_int(env, "SMTP_PORT", 2525, minimum=0),
            smtp_max_bytes=_int(env, "SMTP_MAX_BYTES", 30 * 1024 * 1024, minimum=1024),
            smtp_limits=_smtp_limits(env),
            smtp_tls_cert=_tls_pair(env)[0],
            smtp_tls_key=_tls_pair(env)[1],
            store=_choice(env, "STORE", "local", ("local", "s3")),
            store_dir=Path(env.get(PREFIX + "STORE_DIR") or data_dir / "mail"),
            queue_url=env.get(PREFIX + "QUEUE_URL", ""),
            queue_wait_seconds=_int(env, "QUEUE_WAIT_SECONDS", 20, minimum=0),
            metrics_token=env.get(PREFIX + "METRICS_TOKEN", "").strip(),
            soft_bounce_limit=_int(env, "SOFT_BOUNCE_LIMIT", 3, minimum=0),
            soft_bounce_window_days=_int(env, "SOFT_BOUNCE_WINDOW_DAYS", 7, minimum=1),
            complaint_action=_choice(env, "COMPLAINT_ACTION", "disable", ("disable", "count")),
            keep_days=_int(env, "KEEP_DAYS", 14, minimum=1),
            notices=_bool(env, "NOTICES", True),
            public_url=_public_url(env.get(PREFIX + "PUBLIC_URL", "")),
            inbound_auth=_inbound_auth(env)[0],
            trusted_authserv_id=_inbound_auth(env)[1],
            trusted_relays=_inbound_auth(env)[2],
            inbound_auth_resolver=(env.get(PREFIX + "INBOUND_AUTH_RESOLVER") or "").strip(),
            contact_keys=_contact_keys(env),
            thread_days=_int(env, "THREAD_DAYS", 180, minimum=1),
        )
