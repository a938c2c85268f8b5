"""Typed settings, read once from the environment at the edge (CLI start, Lambda cold start).

Nothing in othermail reads ``os.environ`` anywhere else; everything else receives a ``Settings``.
Each field's variables, default and description are its metadata (``documented``); docs/hooks.py
generates the reference in docs/configuration.md from them and checks them against ``from_env``.
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
    raw = (env.get(PREFIX + "CONTACT_KEYS") or "").strip()
    if not raw:
        return ()
    from forwarder.adapters.sealing import parse_keys
    from forwarder.errors import SealError

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
class Documented:
    """One row of the configuration reference, which docs/hooks.py generates into
    docs/configuration.md: the variables it covers, their default as Markdown (in words where it
    depends on another setting or the mode) and what they do. The docs build checks each default
    against ``Settings.from_env``."""

    env: tuple[str, ...]
    default: str
    doc: str


def row(*env: str, default: str, doc: str) -> Documented:
    return Documented(env, default, doc)


def documented(*rows: Documented) -> dict[str, tuple[Documented, ...]]:
    """Field metadata: the reference rows of the variables ``from_env`` reads into the field."""
    return {"documented": rows}


def documented_with(name: str) -> dict[str, str]:
    """Field metadata: the field's variable shares the row of field ``name``."""
    return {"documented_with": name}


#: Variables the Lambdas' cold start reads before Settings (forwarder/adapters/aws/secrets.py).
READ_BEFORE_SETTINGS = (
    row(
        "OTHERMAIL_SSM_PATH",
        default="(none)",
        doc="Parameter Store path (e.g. `/othermail/production`) whose parameters, decrypted, are laid over the "
        "environment at cold start ([Serverless](operator/serverless.md#packages-for-aws-lambda))",
    ),
    row(
        "OTHERMAIL_SECRETS_ARN",
        default="(none)",
        doc="Secrets Manager secret (ARN or name) holding a JSON object of `OTHERMAIL_*` values, laid over the "
        "environment and SSM",
    ),
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(
        default=Path("var"),
        metadata=documented(
            row("OTHERMAIL_DATA_DIR", default="`var`", doc="folder for the SQLite database and the outbox")
        ),
    )
    database_url: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_DATABASE_URL",
                default="`sqlite:///<data dir>/othermail.db`",
                doc="SQLAlchemy URL, e.g. `postgresql+psycopg://user@host/db`, `mysql+pymysql://user@host/db`",
            )
        ),
    )
    database_prepared_statements: bool = field(
        default=True,
        metadata=documented(
            row(
                "OTHERMAIL_DATABASE_PREPARED_STATEMENTS",
                default="`true`",
                doc="PostgreSQL (psycopg): prepare the forwarder's statements on the server from their second run on "
                "a connection; set `false` behind a proxy that pools transactions, not sessions (RDS Proxy pins "
                "each session that prepares, PgBouncer in transaction mode loses them; see "
                "[Serverless](operator/serverless.md#the-database-behind-rds-proxy-or-pgbouncer)). No effect on "
                "SQLite and MariaDB",
            )
        ),
    )
    domains: tuple[str, ...] = field(
        default=("othermail.example",),
        metadata=documented(
            row(
                "OTHERMAIL_DOMAINS",
                default="`othermail.example`",
                doc="comma-separated alias domains; the first is the default",
            )
        ),
    )
    ses_api: str = field(
        default="v2",
        metadata=documented(
            row(
                "OTHERMAIL_SES_API",
                default="`v2`",
                doc="`v2` (SendEmail, raw, 40 MB) or `v1` (SendRawEmail, 10 MB)",
            )
        ),
    )
    aws_region: str = field(
        default="us-east-1",
        metadata=documented(
            row("OTHERMAIL_AWS_REGION", default="`AWS_REGION`, else `us-east-1`", doc="region of SES and S3")
        ),
    )
    s3_bucket: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_S3_BUCKET",
                default="(none; required by the Lambda and the worker)",
                doc="bucket the SES receipt rule writes to",
            )
        ),
    )
    s3_prefix: str = field(
        default="inbound/",
        metadata=documented(
            row("OTHERMAIL_S3_PREFIX", default="`inbound/`", doc="object key prefix of that S3 action")
        ),
    )
    ses_configuration_set: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_SES_CONFIGURATION_SET",
                default="(none)",
                doc="configuration set for sends (bounce and complaint events)",
            )
        ),
    )
    sender: str = field(
        default="ses",
        metadata=documented(
            row(
                "OTHERMAIL_SENDER",
                default="`ses` for the Lambda and `othermail worker`, `outbox` for `othermail run`",
                doc="outbound sender: `ses`, `outbox` (the local Maildir) or `smtp` (a relay, below)",
            )
        ),
    )
    outbox: Path = field(
        default=Path("var/outbox"),
        metadata=documented(row("OTHERMAIL_OUTBOX", default="`<data dir>/outbox`", doc="the local outbox Maildir")),
    )
    policy: Policy = field(
        default_factory=Policy,
        metadata=documented(
            row("OTHERMAIL_DROP_SPAM", default="`true`", doc="drop mail whose SES spam verdict is FAIL"),
            row("OTHERMAIL_DROP_DMARC_REJECT", default="`true`", doc="drop mail failing DMARC under a `reject` policy"),
            row("OTHERMAIL_DROP_BOUNCES", default="`true`", doc="drop bounces addressed to aliases"),
            row("OTHERMAIL_DROP_AUTO_REPLIES", default="`true`", doc="drop auto-replies addressed to aliases"),
        ),
    )
    claim_timeout_seconds: int = field(
        default=900,
        metadata=documented(
            row(
                "OTHERMAIL_CLAIM_TIMEOUT_SECONDS",
                default="`900`",
                doc="after this, a delivery claimed by a dead worker is taken over",
            )
        ),
    )
    mail_limits: MailLimits = field(
        default=DEFAULT_MAIL_LIMITS,
        metadata=documented(
            row(
                "OTHERMAIL_LIMIT_ALIAS_PER_HOUR",
                "OTHERMAIL_LIMIT_ALIAS_PER_DAY",
                default="`100` / `500`",
                doc="messages one alias forwards per UTC hour / day; `0`: no limit (see [Limits](limits.md))",
            ),
            row(
                "OTHERMAIL_LIMIT_USER_PER_HOUR",
                "OTHERMAIL_LIMIT_USER_PER_DAY",
                default="`200` / `1000`",
                doc="messages all the aliases of one user forward per UTC hour / day; `0`: no limit",
            ),
        ),
    )
    # outbound SMTP relay (OTHERMAIL_SENDER=smtp)
    relay_host: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_RELAY_HOST",
                default="(none; required by `smtp`)",
                doc="host name of the SMTP relay (checked against its TLS certificate)",
            )
        ),
    )
    relay_port: int = field(
        default=587,
        metadata=documented(
            row(
                "OTHERMAIL_RELAY_PORT",
                default="`587`",
                doc="relay port: 587 for `starttls`, 465 for `tls`, 25 for `none`",
            )
        ),
    )
    relay_security: str = field(
        default="starttls",
        metadata=documented(
            row(
                "OTHERMAIL_RELAY_SECURITY",
                default="`starttls`",
                doc="`starttls` (required: no fallback to clear text), `tls` (implicit TLS) or `none`",
            )
        ),
    )
    relay_username: str = field(
        default="",
        metadata=documented(row("OTHERMAIL_RELAY_USERNAME", default="(none)", doc="AUTH user name; empty: no AUTH")),
    )
    relay_password: str = field(
        default="", metadata=documented(row("OTHERMAIL_RELAY_PASSWORD", default="(none)", doc="AUTH password"))
    )
    relay_timeout_seconds: int = field(
        default=30,
        metadata=documented(
            row(
                "OTHERMAIL_RELAY_TIMEOUT_SECONDS",
                default="`30`",
                doc="timeout of each connection and command to the relay",
            )
        ),
    )
    # inbound SMTP listener and where it keeps raw mail (one-box mode)
    smtp_host: str = field(
        default="127.0.0.1",
        metadata=documented(
            row(
                "OTHERMAIL_SMTP_HOST",
                default="`127.0.0.1`",
                doc="address the SMTP listener and the web app of `othermail run` bind to",
            )
        ),
    )
    smtp_port: int = field(
        default=2525,
        metadata=documented(
            row(
                "OTHERMAIL_SMTP_PORT",
                default="`2525`",
                doc="SMTP listener port (`--smtp-port` / `--port` override it)",
            )
        ),
    )
    smtp_max_bytes: int = field(
        default=30 * 1024 * 1024,
        metadata=documented(
            row(
                "OTHERMAIL_SMTP_MAX_BYTES",
                default="`31457280` (30 MB)",
                doc="largest message the listener accepts (SIZE; 552 above it)",
            )
        ),
    )
    smtp_limits: SmtpLimits = field(
        default_factory=SmtpLimits,
        metadata=documented(
            row(
                "OTHERMAIL_SMTP_MAX_FAILED_RCPT",
                default="`10`",
                doc="failed recipients (unknown alias, foreign domain) one SMTP session may have; the one that "
                "reaches it is answered `421` and the connection closed; `0`: no cap",
            ),
            row(
                "OTHERMAIL_SMTP_MAX_FAILED_RCPT_PER_IP",
                default="`30`",
                doc="failed recipients one client IP (an IPv6 client's /64, here and for the session cap) may have "
                "within the window over all its sessions; at the cap, and while over it, every RCPT from it is "
                "answered `421` and the connection closed; `0`: no cap",
            ),
            row(
                "OTHERMAIL_SMTP_MAX_FAILED_RCPT_PER_NETWORK",
                default="`100`",
                doc="the same cap for a client's network (IPv4 /24, IPv6 /48), over all its addresses; `0`: no cap",
            ),
            row(
                "OTHERMAIL_SMTP_FAILED_RCPT_GLOBAL",
                default="`1000`",
                doc="failed recipients from all clients within the window past which every RCPT (accepted ones "
                "too) is answered after the longest tarpit delay, so a probe spread over many networks is slowed "
                "down as well; `0`: no such budget",
            ),
            row("OTHERMAIL_SMTP_FAILED_RCPT_WINDOW_SECONDS", default="`600`", doc="that sliding window, in seconds"),
            row(
                "OTHERMAIL_SMTP_TARPIT_STEP_MS",
                "OTHERMAIL_SMTP_TARPIT_MAX_MS",
                default="`250` / `5000`",
                doc="a failed recipient is answered after this delay per miss of the client IP in the window, up "
                "to the maximum (other clients are served meanwhile); `0`: no delay",
            ),
            row(
                "OTHERMAIL_SMTP_MAX_SESSIONS",
                "OTHERMAIL_SMTP_MAX_SESSIONS_PER_IP",
                default="`100` / `10`",
                doc="open SMTP sessions in total / per client IP; a connection over either is greeted `421` and "
                "closed; past 80% of the total, a client IP already holding 2 sessions is refused too, so the "
                "last slots stay for others; `0`: no cap",
            ),
            row(
                "OTHERMAIL_SMTP_SESSION_SECONDS",
                "OTHERMAIL_SMTP_DATA_SECONDS",
                default="`600` / `300`",
                doc="absolute deadlines of an SMTP session (from connect) and of its DATA transfer (from the "
                "`354`): at either the client is told `421 4.4.2` and the connection closed, however busy it is "
                "(the idle timeout alone restarts with every byte); `0`: no deadline",
            ),
            row(
                "OTHERMAIL_SMTP_SPILL_BYTES",
                default="`1048576` (1 MB)",
                doc="a DATA body larger than this is written to a file in the spool as it arrives instead of held "
                "in memory",
            ),
        ),
    )
    # STARTTLS on the listener: a PEM certificate (chain) and its key, both or neither
    smtp_tls_cert: Path | None = field(
        default=None,
        metadata=documented(
            row(
                "OTHERMAIL_SMTP_TLS_CERT",
                "OTHERMAIL_SMTP_TLS_KEY",
                default="(none)",
                doc="PEM certificate (chain) and private key for STARTTLS on the listener, both or neither; "
                "re-read when either file changes (checked on each new connection), so a renewed certificate "
                "needs no restart",
            )
        ),
    )
    smtp_tls_key: Path | None = field(default=None, metadata=documented_with("smtp_tls_cert"))
    store: str = field(
        default="local",
        metadata=documented(
            row(
                "OTHERMAIL_STORE",
                default="`local`",
                doc="where the listener keeps raw mail: `local` (a folder) or `s3` (`OTHERMAIL_S3_BUCKET`)",
            )
        ),
    )
    store_dir: Path = field(
        default=Path("var/mail"),
        metadata=documented(row("OTHERMAIL_STORE_DIR", default="`<data dir>/mail`", doc="the local raw-mail folder")),
    )
    # queue worker (EC2 mode: SES -> S3 -> SNS -> SQS)
    queue_url: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_QUEUE_URL",
                default="(none; required by `othermail worker`)",
                doc="the SQS queue the worker reads (`--queue-url` overrides it)",
            )
        ),
    )
    queue_wait_seconds: int = field(
        default=20,
        metadata=documented(
            row(
                "OTHERMAIL_QUEUE_WAIT_SECONDS",
                default="`20`",
                doc="long-poll wait of each receive, 0 to 20 (`--wait-seconds` overrides it)",
            )
        ),
    )
    # one box: bearer token for /metrics; empty: /metrics answers loopback only
    metrics_token: str = field(
        default="",
        repr=False,
        metadata=documented(
            row(
                "OTHERMAIL_METRICS_TOKEN",
                default="(none)",
                doc="bearer token `othermail run` wants on `/metrics`; without it, `/metrics` answers direct "
                "loopback clients only (see [Observability](operator/one-box.md#observability))",
            )
        ),
    )
    # SES feedback (forwarder/adapters/sql/feedback_store.py): soft bounces that pause a destination (0: never)
    # when each came within the window of the one before; what a complaint does to its alias
    soft_bounce_limit: int = field(
        default=3,
        metadata=documented(
            row(
                "OTHERMAIL_SOFT_BOUNCE_LIMIT",
                default="`3`",
                doc="soft bounces, each within the window of the one before, that pause a destination; `0`: never",
            )
        ),
    )
    soft_bounce_window_days: int = field(
        default=7,
        metadata=documented(row("OTHERMAIL_SOFT_BOUNCE_WINDOW_DAYS", default="`7`", doc="that window, in days")),
    )
    complaint_action: str = field(
        default="disable",
        metadata=documented(
            row(
                "OTHERMAIL_COMPLAINT_ACTION",
                default="`disable`",
                doc="what a spam complaint does to the alias that carried the message: `disable` (switch it off) "
                "or `count`",
            )
        ),
    )
    # kept mail: days the store keeps raw messages (downloads, quarantine); notices to users
    keep_days: int = field(
        default=14,
        metadata=documented(
            row(
                "OTHERMAIL_KEEP_DAYS",
                default="`14`",
                doc="days raw mail is kept for download and quarantine (one box prunes its store hourly; on AWS "
                "set the stack's `RetentionDays` to the same)",
            )
        ),
    )
    notices: bool = field(
        default=True,
        metadata=documented(
            row(
                "OTHERMAIL_NOTICES",
                default="`true`",
                doc="send owners a notice when a message cannot be forwarded "
                "([user guide](user-guide.md#kept-mail-notices-and-the-quarantine))",
            )
        ),
    )
    #: The web app's address as users reach it ("https://mail.example.org"), for links in notices.
    public_url: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_PUBLIC_URL",
                default="(none; `othermail run` uses its own web address)",
                doc="the web app's address as users reach it: every link the service mails (notices, password "
                "reset, destination verification) starts with it, never with the request's `Host`; the web app "
                "answers only requests naming its host (Flask's `TRUSTED_HOSTS`; the one box also its listening "
                "address, `127.0.0.1` and `localhost`) and any other `Host` gets 400. Required by the web app on "
                "EC2 and Lambda, which cannot mail links without it",
            )
        ),
    )
    # one box: how mail that arrives by SMTP is authenticated (forwarder/adapters/inbound_auth)
    inbound_auth: str = field(
        default="own",
        metadata=documented(
            row(
                "OTHERMAIL_INBOUND_AUTH",
                default="`own`",
                doc="how the one box authenticates mail its SMTP listener receives: `own` (its own SPF, DKIM and "
                "DMARC checks), `trusted-relay` (the `Authentication-Results` of the filter named below) or `off` "
                "(no verdicts); see [One box](operator/one-box.md)",
            )
        ),
    )
    trusted_authserv_id: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_TRUSTED_AUTHSERV_ID",
                default="(none; required by `trusted-relay`)",
                doc="the authserv-id the filter in front writes in its `Authentication-Results` (e.g. its host name)",
            )
        ),
    )
    trusted_relays: tuple[str, ...] = field(
        default=(),
        metadata=documented(
            row(
                "OTHERMAIL_TRUSTED_RELAYS",
                default="(none; required by `trusted-relay`)",
                doc="comma-separated IP addresses or CIDR networks that filter connects from",
            )
        ),
    )
    #: HOST[:PORT] of the name server the inbound checks ask; empty: the system's.
    inbound_auth_resolver: str = field(
        default="",
        metadata=documented(
            row(
                "OTHERMAIL_INBOUND_AUTH_RESOLVER",
                default="(the system's)",
                doc="`HOST[:PORT]` of the name server the `own` checks ask (a local validating resolver is best)",
            )
        ),
    )
    #: Keys that seal contacts' addresses and the Message-ID map, ``(id, 32 bytes)``, the first current;
    #: empty: the one box keeps one in <data dir>/contact-keys (forwarder/runtime.py).
    contact_keys: tuple[tuple[str, bytes], ...] = field(
        default=(),
        metadata=documented(
            row(
                "OTHERMAIL_CONTACT_KEYS",
                default="(none; `othermail run` keeps one in `<data dir>/contact-keys`)",
                doc="comma-separated `id:key` entries (a key is 32 random bytes in URL-safe base64; `othermail keys "
                "new` prints one) that seal contacts' real addresses and the Message-ID map (AES-GCM) and key their "
                "lookup digests; the first seals, the others still open. Required by the Lambda and `othermail "
                "worker` (set it through `OTHERMAIL_SSM_PATH` or `OTHERMAIL_SECRETS_ARN`), and must be the same on "
                "every host that shares the database. To rotate: put a new entry first, restart, run `othermail "
                "keys rotate`, then drop the old entry",
            )
        ),
    )
    #: Days a reply keeps finding the thread it answers (message_links rows expire after them).
    thread_days: int = field(
        default=180,
        metadata=documented(
            row(
                "OTHERMAIL_THREAD_DAYS",
                default="`180`",
                doc="days a forwarded message and its reply stay linked, so an answer lands in the same thread; "
                "older links are pruned",
            )
        ),
    )
    two_way: bool = field(
        default=True,
        metadata=documented(
            row(
                "OTHERMAIL_TWO_WAY",
                default="`true`",
                doc="two-way aliases: forwarded mail names every outside address by a reverse address of "
                "the alias, so Reply and Reply-All leave from the alias; `false` forwards one way (Reply-To "
                "is the sender). Needs the contact keys (`OTHERMAIL_CONTACT_KEYS`); on Lambda without them "
                "mail is forwarded one way",
            )
        ),
    )

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

    @property
    def engine_options(self) -> dict[str, object]:
        """Keyword arguments of ``models.make_engine`` these settings ask for: psycopg's prepared
        statements off (``prepare_threshold`` None) when ``database_prepared_statements`` is false."""
        from sqlalchemy.engine import make_url

        if self.database_prepared_statements or make_url(self.resolved_database_url).get_driver_name() != "psycopg":
            return {}
        return {"connect_args": {"prepare_threshold": None}}

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
            database_prepared_statements=_bool(env, "DATABASE_PREPARED_STATEMENTS", True),
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
            two_way=_bool(env, "TWO_WAY", True),
        )
