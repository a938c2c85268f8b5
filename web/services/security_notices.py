"""Security notices: a mail to the account's own address when something changes its security.

The views call :func:`web.notices.notify` (it reads where the request came from, then calls
:func:`notify` here, which takes that as an argument) right after the change is committed: a
sign-in from a browser that had no device cookie for the account (:mod:`web.devices`), a password
change or reset, a two-factor change (enabled, disabled, recovery codes made again or used, a
passkey added or removed) and a new API token. The mail says what happened, when (UTC), from which IP and
which kind of browser, and what to do if it was not the owner (a link to the account page).

The mail holds only the service's own words (as every service mail, :func:`web.mailer.send_mail`):
no token, code, secret, token or passkey name, nor the raw User-Agent header (a browser is named by
its family and system, from a fixed list). It goes only to a confirmed address: an account whose
address was never proved could belong to someone who typed another person's address at sign-up.

The mail is sent off the request path (:func:`web.mailer.send_later`); a mail that cannot be sent is
logged, and the action that caused it goes on as if it had been sent. Notices have their own daily
cap per recipient (:data:`NOTICE_CAP`), not the one of other service mail, so sign-up attempts or
reset mails cannot use up their room; "New sign-in" notices count toward one more
(:data:`SIGNIN_NOTICE_CAP`), so a run of sign-ins cannot use it up before a change is made.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime

from models import User, utcnow
from web import mailer, ratelimit
from web.services.errors import ServiceError

logger = logging.getLogger("othermail.web.notices")


class NoticeEvent(enum.Enum):
    """What happened; the value is the subject's ending and the first sentence of the mail."""

    NEW_SIGNIN = (
        "New sign-in",
        "Your othermail account was signed in to from a browser that had not signed in before.",
    )
    PASSWORD_CHANGED = ("Password changed", "The password of your othermail account was changed.")
    PASSWORD_RESET = (
        "Password reset",
        "The password of your othermail account was reset through the link mailed to this address.",
    )
    TWO_FACTOR_ENABLED = (
        "Two-factor sign-in turned on",
        "Two-factor sign-in was turned on for your othermail account.",
    )
    TWO_FACTOR_DISABLED = (
        "Two-factor sign-in turned off",
        "Two-factor sign-in was turned off for your othermail account.",
    )
    RECOVERY_CODES_REGENERATED = (
        "New recovery codes",
        "New recovery codes were made for your othermail account; the old ones no longer work.",
    )
    RECOVERY_CODE_USED = (
        "Recovery code used",
        "A recovery code was used to sign in to your othermail account; it cannot be used again.",
    )
    PASSKEY_ADDED = ("Passkey added", "A passkey was added to your othermail account.")
    PASSKEY_REMOVED = ("Passkey removed", "A passkey was removed from your othermail account.")
    API_TOKEN_CREATED = ("New API token", "A new API token was created for your othermail account.")

    @property
    def subject(self) -> str:
        return f"othermail security notice: {self.value[0]}"

    @property
    def sentence(self) -> str:
        return self.value[1]


BODY = (
    "{sentence}\n"
    "{detail}"
    "\n"
    "When: {when}\n"
    "IP address: {ip}\n"
    "Browser: {browser}\n"
    "\n"
    "If it was you, there is nothing to do.\n"
    "\n"
    "If it was not you, someone else may know your password. Sign in now, change your password and\n"
    "end the sessions you do not recognise on your account page:\n"
    "{link}\n"
    "If you cannot sign in, choose a new password through the reset link on the sign-in page.\n"
)


@dataclass(frozen=True)
class Client:
    """Where a change came from, read in the request (the mail is written after it)."""

    ip: str
    browser: str

    @classmethod
    def of(cls, remote_addr: str | None, user_agent: str | None) -> Client:
        """The client of a request: its address if it is one, its browser by :func:`browser_name`."""
        return cls(ip=_ip(remote_addr), browser=browser_name(user_agent or ""))


UNKNOWN = Client(ip="unknown", browser="unknown")


def notify(user: User, event: NoticeEvent, client: Client = UNKNOWN, *, detail: str = "") -> None:
    """Mail ``user`` a notice of ``event`` done from ``client``; never raises (a failure is logged).

    Call it after the change is committed. ``detail`` is an extra line in the service's own words
    (say "Scope: write; it expires 2027-01-01."), never text a user typed (a token's or a passkey's
    name) nor anything secret.
    """
    try:
        if user.email_verified_at is None:
            return
        mailer.send_later(functools.partial(_send, user.email, event, detail.strip(), client, utcnow()))
    except Exception:  # noqa: BLE001 - a notice must never break the action it reports
        logger.exception("the security notice %s was not sent", event.name)


def message(event: NoticeEvent, detail: str, client: Client, when: datetime, link: str) -> tuple[str, str]:
    """The subject and text of a notice; ``link`` is the account page's address."""
    text = BODY.format(
        sentence=event.sentence,
        detail=f"{detail}\n" if detail else "",
        when=f"{when:%Y-%m-%d %H:%M} UTC",
        ip=client.ip,
        browser=client.browser,
        link=link,
    )
    return event.subject, text


#: The daily cap per recipient that notices count toward (web/ratelimit.py), apart from the cap of
#: other service mail; sign-in notices count toward one more, so they leave room for the others.
NOTICE_CAP = "security-notice-mail"
SIGNIN_NOTICE_CAP = "signin-notice-mail"


def _send(address: str, event: NoticeEvent, detail: str, client: Client, when: datetime) -> None:
    try:
        key = mailer.recipient_key(address)
        if event is NoticeEvent.NEW_SIGNIN and ratelimit.hit(SIGNIN_NOTICE_CAP, key) is not None:
            logger.warning("a sign-in notice to a mailbox at %s not sent: its daily cap is reached", _domain(address))
            return
        subject, text = message(event, detail, client, when, mailer.link("account.index"))
        mailer.send_mail(address, subject, text, cap=NOTICE_CAP)
    except ServiceError:  # not sent (no mail service, the recipient's daily cap): the mailer logged why
        logger.warning("the security notice %s to a mailbox at %s was not sent", event.name, address.rpartition("@")[2])


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _ip(raw: str | None) -> str:
    try:
        return str(ipaddress.ip_address((raw or "").strip()))
    except ValueError:
        return "unknown"


#: (token in the User-Agent, name) in the order they are tried: Edge and Opera also say "Chrome",
#: Chrome also says "Safari".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def browser_name(user_agent: str) -> str:
    """The browser family and system named by a User-Agent header, in words from a fixed list
    (the header itself is whatever the client sent): "Firefox on Linux", "an unknown browser"."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"a browser on {system}"
    return "an unknown browser"
