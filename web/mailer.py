"""Mail the service itself sends (verification links, password resets), through the same
outbound sender port as forwarding: the local outbox, an SMTP relay or SES.

A mail that cannot be sent (no sender configured, the relay or SES unreachable or refusing) is
logged with its cause for the operator and raised as :class:`MailNotSent`, a ``ServiceError`` the
pages show as a message and the API as ``503 mail_unavailable``: never a 500.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from email.message import EmailMessage

from flask import Flask, current_app, render_template

from forwarder import accounts
from forwarder.errors import MailNotSent, RecipientCapped, SettingsError
from forwarder.ports import Sender
from web import ratelimit
from web.db import runtime

logger = logging.getLogger("othermail.web.mailer")


def service_sender() -> Sender:
    """The outbound sender the app uses: its runtime's (forwarder/runtime.py; tests build the
    runtime with their own)."""
    return _sender()


def _sender() -> Sender:
    return runtime().sender


def is_mailable(address: str) -> bool:
    """:func:`forwarder.accounts.is_mailable` (kept here for the app's callers)."""
    return accounts.is_mailable(address)


def accepted_address(raw: object) -> str | None:
    """:func:`forwarder.accounts.accepted_address`: the one validator for every address a user or
    an operator types (the web app and the CLI)."""
    return accounts.accepted_address(raw)


def service_address() -> str:
    return f"noreply@{current_app.config['SETTINGS'].domains[0]}"


def link(endpoint: str, **values: object) -> str:
    """An absolute link for a mail, from the configured address (:func:`web.links.external_url`);
    without one configured, :class:`MailNotSent` (logged) rather than a 500."""
    from web.links import external_url

    try:
        return external_url(endpoint, **values)
    except SettingsError as exc:
        logger.error("a service mail was not sent: %s", exc)
        raise MailNotSent() from exc


#: Domains whose mailboxes ignore dots in the local part (and where googlemail.com is gmail.com).
DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def canonical_mailbox(address: str) -> str:
    """One spelling per mailbox, for counting: lowercased, without a ``+tag``, and for Gmail
    without dots in the local part (``A.nn+x@googlemail.com`` -> ``ann@gmail.com``). Only for
    counting: mail still goes to the address as given."""
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local, domain = local.replace(".", ""), DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"


def recipient_key(address: str) -> str:
    """The rate-limit key of a recipient mailbox (:func:`canonical_mailbox`): a hash, so the
    counters do not hold addresses."""
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), canonical_mailbox(address).encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def send_mail(to: str, subject: str, text: str, *, cap: str = "recipient-mail") -> None:
    """Send a plain-text message from the service's no-reply address.

    ``subject`` and ``text`` are the service's own words: no caller puts text a user chose in them
    (a label, a note, a display name, another account's address), so nobody can make the service
    mail their words to someone else. Each recipient gets at most the ``cap`` limit of such mail a
    day (``recipient-mail`` for all service mail but security notices, which have their own),
    counted in the database across every account and process.
    """
    if not is_mailable(to):
        raise ValueError(f"refusing to mail an address that is not printable 7-bit: {to!r}")
    wait = ratelimit.hit(cap, recipient_key(to))
    if wait is not None:
        logger.warning(
            "service mail %r to a mailbox at %s not sent: its daily cap is reached", subject, to.rpartition("@")[2]
        )
        raise RecipientCapped(wait)
    message = EmailMessage()
    message["From"] = email.utils.formataddr(("othermail", service_address()))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=service_address().rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    # 7-bit text when it fits (the service's words are ASCII, lines short but for links): a link
    # then stands on one line of the raw message, as someone reading the one box's outbox copies it.
    plain = text.isascii() and all(len(line) <= 900 for line in text.splitlines())
    message.set_content(text, cte="7bit" if plain else None)
    try:
        _sender().send(message.as_bytes(), sender=service_address(), recipient=to)
    except Exception as exc:  # noqa: BLE001 - any sender failure: the caller shows a message, the log the cause
        logger.error(
            "could not send the service mail %r to a mailbox at %s: %s: %s",
            subject,
            to.rpartition("@")[2],
            type(exc).__name__,
            exc,
            exc_info=True,
        )
        raise MailNotSent() from exc


_worker_lock = threading.Lock()


def send_later(job: Callable[[], None]) -> None:
    """Run ``job``, which sends service mail, after the request, in the app's mail worker thread
    and an app context of its own: the request answers without waiting for the database look-ups,
    the relay or SES, so its answer and its timing are the same whatever the job finds or sends
    (a password reset must not tell which addresses have accounts). A failing job is logged.

    Tests may put a runner in ``app.extensions["othermail.mail_runner"]`` (one that calls the job
    at once); :func:`wait_for_mail` waits for the worker's jobs. ``MAIL_WORKER = "inline"``
    (``OTHERMAIL_WEB_MAIL_WORKER``) runs the job in the request instead: on Lambda, which freezes
    the process once the answer is out, a thread's mail could wait for the next request or be
    lost, so the Zappa stages take reliable delivery over equal timing there.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the werkzeug LocalProxy's real object, for the worker thread

    def run() -> None:
        with app.app_context():
            try:
                job()
            except Exception:  # noqa: BLE001 - nobody waits for the answer: the log is where it goes
                logger.exception("a service mail job failed")

    runner = app.extensions.get("othermail.mail_runner")
    if runner is None and app.config.get("MAIL_WORKER", "thread") == "inline":
        runner = _call
    if runner is not None:
        runner(run)
        return
    with _worker_lock:
        worker = app.extensions.get("othermail.mail_worker")
        if worker is None:
            worker = app.extensions["othermail.mail_worker"] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="othermail-mail"
            )
        pending: set[Future[None]] = app.extensions.setdefault("othermail.mail_pending", set())
        future = worker.submit(run)
        pending.add(future)
    future.add_done_callback(pending.discard)


def _call(job: Callable[[], None]) -> None:
    job()


def wait_for_mail(app: Flask, timeout: float = 30) -> None:
    """Wait until the mail worker has run every job handed to it so far."""
    with _worker_lock:
        pending = list(app.extensions.get("othermail.mail_pending", ()))
    wait(pending, timeout=timeout)


def _not_sent(exc: MailNotSent) -> tuple[str, int]:
    """A page that did not catch :class:`MailNotSent` (the API answers it as JSON itself)."""
    return render_template("error.html", title="Email not sent", message=exc.message), exc.status


def init_app(app: Flask) -> None:
    app.register_error_handler(MailNotSent, _not_sent)
