"""One box: the web app, the SMTP listener and the forwarder.

This is the composition root of ``othermail run`` (and of ``othermail smtp``, which is the same
without the web app). Everything is built from one :class:`Settings`; nothing here is imported by
the Lambda. The forwarding flow runs on ``workers`` threads of this process, or, with
``processes=True`` (what ``othermail run`` does), in ``workers`` worker processes fed by the spool
(forwarder/hosts/workers.py), each with its own runtime built from the same settings.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.sql.directory import AddressStatus
from forwarder.errors import AddressInUse
from forwarder.flows.reply import looks_reverse
from forwarder.hosts.dispatch import Dispatcher
from forwarder.ops.metrics import RETRY, SKIPPED, prometheus_text
from forwarder.ports import Sender
from forwarder.runtime import Runtime
from forwarder.settings import Settings

logger = logging.getLogger("othermail.onebox")

#: Accepted messages waiting to be forwarded, per forwarding worker, above which the SMTP listener
#: delays DATA (forwarder/adapters/smtp/ingress.py, in-flow delay).
BACKLOG_PER_WORKER = 2
#: How often the local store is pruned of mail older than ``OTHERMAIL_KEEP_DAYS``.
PRUNE_INTERVAL_SECONDS = 3600.0


@dataclass
class Started:
    """What ``start`` brought up, for the operator."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    web_url: str | None = None
    smtp_port: int | None = None
    recovered: int = 0


def _trusted_hosts(public_url: str, host: str) -> list[str] | None:
    """The Host values the one box's web app answers: the public URL's name, the address it
    listens on and the loopback names; None (any) when it listens on every address with no public
    URL set, as nothing then says which names reach it. Mailed links never use the Host anyway."""
    from web.links import LOOPBACK_NAMES, trusted_hosts

    everywhere = host in ("0.0.0.0", "::", "")
    if not public_url and everywhere:
        return None
    names = trusted_hosts(public_url) if public_url else []
    for name in (host, *LOOPBACK_NAMES):
        if name not in names and ":" not in name and not (everywhere and name == host):
            names.append(name)
    return names


#: Paths whose last segment is a secret (reset and verification links); the request log masks it.
_SECRET_PATH = re.compile(r"(/(?:reset|verify)/)[^/?#\s]+")


def _request_handler() -> type:
    """Werkzeug's request handler, logging ``/reset/<token>`` and ``.../verify/<token>`` as
    ``/reset/...``: the request log goes to stdout and so to the journal (issue 12.8)."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            super().log(type, message, *(_SECRET_PATH.sub(r"\1...", a) if isinstance(a, str) else a for a in args))

    return Handler


class OneBox:
    def __init__(
        self,
        settings: Settings,
        *,
        web_port: int | None = 8000,
        smtp_port: int | None = None,
        host: str | None = None,
        sender: Sender | None = None,
        workers: int = 4,
        processes: bool = False,
    ) -> None:
        if processes and sender is not None:
            raise ValueError("a sender handed in cannot reach worker processes; use threads (processes=False)")
        self.settings = settings
        self.host = host or settings.smtp_host
        #: Everything built from the settings (forwarder/runtime.py); the web app shares it.
        import migrations  # not in the Lambda's zip: only the one box migrates on start

        self.runtime = Runtime.build(settings, **({"sender": sender} if sender is not None else {}))
        self.runtime.prepare_data_dir()
        migrations.upgrade(settings.resolved_database_url)
        self.engine = self.runtime.engine
        self.sender = self.runtime.sender
        self.metrics = self.runtime.metrics
        self.forwarder = self.runtime.forwarder
        directory = self.runtime.directory
        self.spool = self.runtime.spool
        # Every spool entry comes from the SMTP listener, which strips forged trace fields and
        # stamps ours (authserv-id: the first mail domain, as in the SMTP banner); the dispatcher
        # takes the verdicts from the spool envelope (from the stamp only for older entries).
        self.authenticator = self.runtime.authenticator
        self.dispatcher = Dispatcher(self.spool, self.forwarder, workers=workers, verdicts=self.authenticator.verdicts)
        self.workers = workers
        self.worker_processes = processes
        self.listener: SmtpListener | None = None
        if smtp_port is not None:
            replies = self.forwarder.replies

            def known(address: str) -> AddressStatus:
                """An alias, or a contact's reverse address (two-way aliases)."""
                reverse = replies.address_status(address) if replies is not None else None
                return reverse if reverse is not None else directory.address_status(address)

            handler = IngressHandler(
                settings.domains,
                self.spool,
                known,
                self.dispatcher.submit,
                accepts_domain=directory.accepts_domain,
                limits=settings.smtp_limits,
                metrics=self.metrics,
                authenticate=self.authenticator.authenticate,
                screen=replies.screen if replies is not None else None,
                screens=looks_reverse,
                backlog=self.dispatcher.backlog,
                backlog_limit=BACKLOG_PER_WORKER * workers,
            )
            tls = None
            if settings.smtp_tls_cert is not None and settings.smtp_tls_key is not None:
                from forwarder.adapters.smtp.tls import TlsReloader

                tls = TlsReloader(settings.smtp_tls_cert, settings.smtp_tls_key)  # STARTTLS
            self.listener = SmtpListener(
                handler, self.host, smtp_port, settings.smtp_max_bytes, hostname=settings.domains[0], tls=tls
            )
        self.web_port = web_port
        self._web: Any = None
        self._web_thread: threading.Thread | None = None
        self._smtp_listening = False
        self._stopping = threading.Event()
        self._pruner: threading.Thread | None = None

    def start(self) -> Started:
        started = Started()
        started.lines.append(("database", _safe_url(self.settings.resolved_database_url)))
        started.lines.append(("sender", self._sender_line()))
        if self.web_port is not None:
            started.web_url = self._start_web()
            started.lines.append(("web", started.web_url))
            if self.forwarder.notifier is not None and not self.settings.public_url:
                self.forwarder.notifier.public_url = started.web_url  # links in notices
            if self.forwarder.two_way is not None and not self.settings.public_url:
                self.forwarder.two_way.public_url = started.web_url  # one-click unsubscribe links
        if self.worker_processes:
            self._start_workers(started)
        else:
            started.lines.append(("forwarder", f"{self.workers} threads of this process"))
        if self.listener is not None:
            _check_free("smtp", self.listener.host, self.listener.port)
            self.listener.start()
            self._smtp_listening = True
            started.smtp_port = self.listener.port
            started.lines.append(
                ("smtp", f"{self.listener.host}:{self.listener.port} for {', '.join(self.settings.domains)}")
            )
        started.recovered = self.dispatcher.recover()
        if hasattr(self.spool.store, "prune"):
            self._pruner = threading.Thread(target=self._prune_hourly, name="store-prune", daemon=True)
            self._pruner.start()
            started.lines.append(
                ("store", f"{self.settings.store_dir.resolve()} (mail kept {self.settings.keep_days} days)")
            )
        started.lines.append(("spool", f"{self.spool.root.resolve()} ({started.recovered} left from last run)"))
        return started

    def _start_workers(self, started: Started) -> None:
        """Start the forwarding worker processes (before the listener hands them any mail)."""
        from forwarder.hosts.workers import WorkerPool, WorkerSpec

        if self.forwarder.two_way is not None:
            _ = self.runtime.sealer  # makes the contact key file once, before the workers read it
        public_url = None if self.settings.public_url else started.web_url
        spec = WorkerSpec(self.settings, public_url, _log_levels())
        self.dispatcher.processes = WorkerPool(spec, self.workers, metrics=self.metrics)
        started.lines.append(("forwarder", f"{self.workers} worker processes"))

    def prune_store(self) -> int:
        """Delete raw messages older than ``keep_days`` from the local store, but those still
        waiting to be forwarded."""
        import time

        from forwarder.adapters.local.spool import KEY_PREFIX

        waiting = frozenset(KEY_PREFIX + spool_id for spool_id in self.spool.pending())
        removed = self.spool.store.prune(time.time() - self.settings.keep_days * 86400, keep=waiting)  # type: ignore[attr-defined]  # called only when the store is a LocalStore (start checks prune)
        if removed:
            logger.info("store: %d message(s) older than %d days deleted", removed, self.settings.keep_days)
        return int(removed)

    def prune_limit_windows(self) -> int:
        """Delete the mail rate-limit windows of past days (the scheduled job's work on AWS and EC2;
        the hot path never deletes them)."""
        removed = self.runtime.directory.prune_limit_windows()
        if removed:
            logger.info("limits: %d rate-limit window(s) of past days deleted", removed)
        return removed

    def _prune_hourly(self) -> None:
        while True:
            try:
                self.prune_store()
            except OSError as exc:
                logger.warning("store: pruning failed: %s", exc)
            try:
                self.prune_limit_windows()
            except Exception as exc:  # the database may be away for a moment: next hour
                logger.warning("limits: pruning failed: %s", exc.__class__.__name__)
            if self._stopping.wait(PRUNE_INTERVAL_SECONDS):
                return

    def _sender_line(self) -> str:
        if self.settings.sender == "outbox":
            return f"local outbox {self.settings.outbox.resolve()} (a Maildir)"
        if self.settings.sender == "smtp":
            return f"SMTP relay {self.settings.relay_host}:{self.settings.relay_port} ({self.settings.relay_security})"
        return f"Amazon SES ({self.settings.ses_api}, {self.settings.aws_region})"

    def _start_web(self) -> str:
        from werkzeug.serving import get_sockaddr, make_server, select_address_family

        from web import create_app

        config: dict[str, Any] = {"SETTINGS": self.settings}
        if self.host in ("127.0.0.1", "localhost", "::1"):
            config["SESSION_COOKIE_SECURE"] = False  # plain HTTP on loopback; behind TLS keep it on
        app = create_app(config, runtime=self.runtime)
        from forwarder.ops.http_endpoints import OpsEndpoints

        served = OpsEndpoints(app, health=self.health, metrics=self.metrics_text, token=self.settings.metrics_token)
        # Bound here, not by make_server: on a port in use it prints to stderr and calls sys.exit.
        port = self.web_port or 0
        family = select_address_family(self.host, port)
        listening = socket.socket(family, socket.SOCK_STREAM)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listening.bind(get_sockaddr(self.host, port, family))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse("web", self.host, port) from None
                raise
            listening.listen(128)
            self._web = make_server(
                self.host, port, served, threaded=True, fd=listening.fileno(), request_handler=_request_handler()
            )
        finally:
            listening.close()  # make_server holds its own duplicate
        url = f"http://{self.host}:{self._web.port}"
        app.config["PUBLIC_URL"] = url  # the mailed links' address when OTHERMAIL_PUBLIC_URL is unset (web/links.py)
        app.config["TRUSTED_HOSTS"] = _trusted_hosts(self.settings.public_url, self.host)
        self._web_thread = threading.Thread(target=self._web.serve_forever, name="web", daemon=True)
        self._web_thread.start()
        return url

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` answers: each part ``ok`` or what is wrong (no message, no URL)."""
        from sqlalchemy import text

        report: dict[str, Any] = {"status": "ok", "database": "ok"}
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            report["database"] = f"unreachable ({exc.__class__.__name__})"
        try:
            report["spool_pending"] = len(self.spool.pending())
        except OSError as exc:
            report["spool_pending"] = None
            report["spool"] = f"unreadable ({exc.__class__.__name__})"
        if self.listener is not None:
            report["smtp"] = "listening" if self._smtp_listening else "stopped"
        failing = [name for name in ("database", "spool", "smtp") if report.get(name, "ok") not in ("ok", "listening")]
        if failing:
            report["status"] = "failing"
            report["failing"] = failing
        return report

    def metrics_text(self) -> str:
        """What ``/metrics`` answers: the outcome counters, retries, skips and the spool, as
        Prometheus text."""
        counts = self.metrics.snapshot()
        dispatched = self.dispatcher.snapshot()
        counts[RETRY] = dispatched.get(RETRY, 0)
        for key, value in dispatched.items():
            if key.startswith(SKIPPED):  # spool entries set aside; OutcomeLog never saw them
                counts[key] += value
        try:
            pending: int | None = len(self.spool.pending())
        except OSError:
            pending = None
        return prometheus_text(counts, spool_pending=pending, start_time=self.metrics.started_at)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop accepting, let running forwards finish; unfinished mail stays spooled."""
        self._stopping.set()
        if self._pruner is not None:
            self._pruner.join(timeout=5)
        if self.listener is not None:
            if self._smtp_listening:
                self._smtp_listening = False
                self.listener.stop()
        if self._web is not None:
            self._web.shutdown()
            if self._web_thread is not None:
                self._web_thread.join(timeout=10)
        finished = self.dispatcher.close(timeout)
        self.authenticator.close()
        closer = getattr(self.sender, "close", None)
        if callable(closer):
            closer()
        self.engine.dispose()
        return finished


def _check_free(service: str, host: str, port: int) -> None:
    """Raise :class:`AddressInUse` when another process listens on ``host:port``: aiosmtpd would
    report it only as its start-up timeout runs out, in a traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError:
        return  # let the listener report it
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(service, host, port) from None


def _log_levels() -> tuple[tuple[str, int], ...]:
    """The root's and othermail's logger levels, for worker processes to log as this one does;
    nothing when logging is not configured here."""
    if not logging.getLogger().handlers:
        return ()
    named = [
        (name, one.level)
        for name, one in logging.Logger.manager.loggerDict.items()
        if name.startswith("othermail") and isinstance(one, logging.Logger) and one.level != logging.NOTSET
    ]
    return (("", logging.getLogger().level), *named)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
