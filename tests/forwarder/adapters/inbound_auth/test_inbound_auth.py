"""forwarder/adapters/inbound_auth: SPF, DKIM and DMARC of mail reaching the one box, against zones served
by a real name server (Knot, see tests/knot_zones.py) on 127.0.0.1; the trusted-relay mode; the
time budget when DNS is unreachable; and, end to end through the SMTP listener and the one box,
forged mail from a p=reject domain is dropped while genuine mail is forwarded."""

from __future__ import annotations

import base64
import smtplib
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dkim
import dns.exception
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from forwarder.accounts import create_alias, ensure_destination, ensure_user
from forwarder.adapters.inbound_auth import Authenticator, Client, Resolver, build_authenticator
from forwarder.adapters.senders import MemorySender
from forwarder.core import Outcome, Verdicts
from forwarder.core.trace import NO_VERDICT, parse_authentication_results
from forwarder.errors import SettingsError
from forwarder.hosts.onebox import OneBox
from forwarder.settings import Settings
from models import Delivery, make_session_factory, utcnow
from tests.knot_zones import KnotZones, knot_zones

AUTHSERV = "othermail.example"
GOOD_IP = "192.0.2.10"  # in sender.test's SPF
BAD_IP = "203.0.113.66"


def _key() -> tuple[bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def _txt(text: str) -> str:
    """A TXT record's data in zone-file form, split into strings of at most 255 characters."""
    return " ".join(f'"{text[i : i + 200]}"' for i in range(0, len(text), 200))


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KnotZones, bytes]]:
    pem, public = _key()
    with knot_zones(tmp_path_factory.mktemp("knot"), ["sender.test", "other.test", "lax.test"]) as server:
        server.set_zone(
            "sender.test",
            [
                f'@ TXT "v=spf1 ip4:{GOOD_IP} -all"',
                'soft TXT "v=spf1 ~all"',
                'local TXT "v=spf1 ip4:127.0.0.1 -all"',
                f'mx1 TXT "v=spf1 ip4:{GOOD_IP} -all"',
                '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:d@sender.test"',
                f"sel._domainkey TXT {_txt('v=DKIM1; k=rsa; p=' + public)}",
            ],
        )
        server.set_zone(
            "other.test",
            [f'@ TXT "v=spf1 ip4:{GOOD_IP} -all"', f"sel._domainkey TXT {_txt('v=DKIM1; k=rsa; p=' + public)}"],
        )
        server.set_zone("lax.test", ['@ TXT "v=spf1 -all"', '_dmarc TXT "v=DMARC1; p=none"'])
        yield server, pem


def message(sender: str = "ceo@sender.test", body: bytes = b"Pay the invoice today.\r\n") -> bytes:
    return (
        f"From: CEO <{sender}>\r\nTo: shop@othermail.example\r\nSubject: invoice\r\n"
        "Date: Mon, 07 Dec 2026 09:00:00 +0000\r\nMessage-ID: <m1@sender.test>\r\n\r\n"
    ).encode() + body


def signed(pem: bytes, raw: bytes, domain: str = "sender.test") -> bytes:
    signature = dkim.sign(raw, b"sel", domain.encode(), pem, include_headers=[b"from", b"to", b"subject", b"date"])
    return signature + raw


def authenticator(zones: tuple[KnotZones, bytes], mode: str = "own", **kwargs) -> Authenticator:
    return Authenticator(mode, AUTHSERV, Resolver.for_nameserver(zones[0].nameserver), **kwargs)


def results(auth: Authenticator, raw: bytes, client: Client) -> dict[str, list[str]]:
    processed = auth.process(raw, client)
    assert processed.startswith(b"Authentication-Results: " + AUTHSERV.encode() + b";")
    value = processed.split(b"\r\n\r\n")[0].split(b"\r\n")
    field = b"".join(line for line in value[: next(i for i in range(1, len(value)) if not value[i].startswith(b"\t"))])
    parsed = parse_authentication_results(field.decode().partition(":")[2])
    assert parsed is not None and parsed.authserv_id == AUTHSERV
    found: dict[str, list[str]] = {}
    for r in parsed.results:
        found.setdefault(r.method, []).append(r.result)
    return found


@pytest.mark.parametrize(
    ("ip", "mail_from", "expected"),
    [
        (GOOD_IP, "bounce@sender.test", "pass"),
        (BAD_IP, "bounce@sender.test", "fail"),
        (BAD_IP, "bounce@soft.sender.test", "softfail"),
        (GOOD_IP, "", "pass"),  # null sender: the HELO name is checked
        (BAD_IP, "", "fail"),
    ],
)
def test_spf(zones: tuple[KnotZones, bytes], ip: str, mail_from: str, expected: str) -> None:
    found = results(authenticator(zones), message(), Client(ip, "mx1.sender.test", mail_from))
    assert found["spf"] == [expected]


def test_dkim_pass_and_a_tampered_body_fails(zones: tuple[KnotZones, bytes]) -> None:
    auth = authenticator(zones)
    good = signed(zones[1], message())
    assert results(auth, good, Client(BAD_IP, "x", "bounce@other.test"))["dkim"] == ["pass"]
    tampered = good.replace(b"today", b"to account 666")
    assert results(auth, tampered, Client(BAD_IP, "x", "bounce@other.test"))["dkim"] == ["fail"]


def test_dmarc_passes_through_aligned_spf(zones: tuple[KnotZones, bytes]) -> None:
    auth = authenticator(zones)
    raw = auth.process(message(), Client(GOOD_IP, "mx1.sender.test", "bounce@mail.sender.test"))
    # mail.sender.test has no SPF record of its own: SPF of the organizational domain is not inherited
    assert auth.verdicts(raw).dmarc == "FAIL"
    raw = auth.process(message(), Client(GOOD_IP, "mx1.sender.test", "bounce@sender.test"))
    assert auth.verdicts(raw) == Verdicts(spf="PASS", dkim="GRAY", dmarc="PASS")


def test_dmarc_passes_through_aligned_dkim_even_when_spf_fails(zones: tuple[KnotZones, bytes]) -> None:
    auth = authenticator(zones)
    raw = auth.process(signed(zones[1], message("news@shop.sender.test")), Client(BAD_IP, "x", "b@other.test"))
    assert auth.verdicts(raw) == Verdicts(spf="FAIL", dkim="PASS", dmarc="PASS")


def test_forged_mail_fails_dmarc_with_the_organizational_policy(zones: tuple[KnotZones, bytes]) -> None:
    auth = authenticator(zones)
    # SPF passes for other.test, and a valid DKIM signature of other.test: neither is aligned
    raw = auth.process(
        signed(zones[1], message("ceo@billing.sender.test"), "other.test"), Client(GOOD_IP, "x", "b@other.test")
    )
    verdicts = auth.verdicts(raw)
    assert (verdicts.spf, verdicts.dkim) == ("PASS", "PASS")
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("FAIL", "reject")
    lax = auth.process(message("boss@lax.test"), Client(BAD_IP, "x", "b@lax.test"))
    assert (auth.verdicts(lax).dmarc, auth.verdicts(lax).dmarc_policy) == ("FAIL", "none")


def test_a_second_from_address_does_not_hide_a_failing_one(zones: tuple[KnotZones, bytes]) -> None:
    auth = authenticator(zones)
    raw = message().replace(b"From: CEO <ceo@sender.test>", b"From: a@other.test, CEO <ceo@sender.test>")
    verdicts = auth.verdicts(auth.process(raw, Client(GOOD_IP, "x", "b@other.test")))
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("FAIL", "reject")


def test_forged_authentication_results_are_replaced_by_ours(zones: tuple[KnotZones, bytes]) -> None:
    auth = authenticator(zones)
    forged = (
        b"Authentication-Results: othermail.example; spf=pass; dkim=pass; dmarc=pass\r\n"
        b"Received-SPF: pass\r\nX-SES-Spam-Verdict: PASS\r\n" + message()
    )
    raw = auth.process(forged, Client(BAD_IP, "x", "bounce@sender.test"))
    assert raw.count(b"Authentication-Results:") == 1 and b"Received-SPF" not in raw and b"X-SES-" not in raw
    assert auth.verdicts(raw) == Verdicts(spf="FAIL", dkim="GRAY", dmarc="FAIL", dmarc_policy="reject")
    # what the message page shows of the stored copy: our verdict only
    from web.services.messages import headers

    shown = headers(raw)
    assert [v for n, v in shown if n == "Authentication-Results"] == [
        "othermail.example; spf=fail (203.0.113.66) smtp.mailfrom=bounce@sender.test; dkim=none; "
        "dmarc=fail (p=reject) header.from=sender.test"
    ]
    assert not [n for n, _ in shown if n in ("Received-SPF", "X-SES-Spam-Verdict", "X-SES-Virus-Verdict")]


def slow_for(nameserver: str, suffix: str, budget: float) -> Resolver:
    """A resolver asking the zones' server, except that names under ``suffix`` never answer: a
    name server the sender controls and makes slow on purpose."""
    from forwarder.ops.dns_doctor import make_resolver

    resolver = make_resolver(nameserver, timeout=budget)
    real = resolver.resolve

    def resolve(qname, rdtype, **kwargs):  # type: ignore[no-untyped-def]
        if str(qname).rstrip(".").endswith(suffix):
            time.sleep(kwargs.get("lifetime") or budget)
            raise dns.exception.Timeout()
        return real(qname, rdtype, **kwargs)

    resolver.resolve = resolve  # type: ignore[method-assign]
    return Resolver(resolver, budget)


@pytest.mark.parametrize(
    ("sender", "mail_from", "slow_signatures"),
    [
        ("CEO <ceo@sender.test>", "bounce@slow.test", 0),  # a slow MAIL FROM domain
        ("CEO <ceo@sender.test>", "bounce@sender.test", 3),  # slow DKIM signatures of another domain
        ("a@slow.test, CEO <ceo@sender.test>", "bounce@other.test", 0),  # a slow From domain in front
    ],
)
def test_a_sender_s_slow_dns_cannot_turn_a_dmarc_fail_into_no_verdict(
    zones: tuple[KnotZones, bytes], sender: str, mail_from: str, slow_signatures: int
) -> None:
    """Regression: the budget is shared, and SPF and DKIM were asked first with all of it."""
    auth = Authenticator("own", AUTHSERV, slow_for(zones[0].nameserver, "slow.test", budget=1.0))
    raw = message().replace(b"From: CEO <ceo@sender.test>", f"From: {sender}".encode())
    for _ in range(slow_signatures):
        raw = signed(zones[1], raw, "slow.test")
    verdicts = auth.verdicts(auth.process(raw, Client(BAD_IP, "x", mail_from)))
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("FAIL", "reject")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("nameserver", ["closed", "silent"])
def test_unreachable_dns_is_temperror_and_no_verdict(zones: tuple[KnotZones, bytes], nameserver: str) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers: a timeout
    silent.bind(("127.0.0.1", 0))
    try:
        port = closed_port() if nameserver == "closed" else silent.getsockname()[1]
        auth = Authenticator("own", AUTHSERV, Resolver.for_nameserver(f"127.0.0.1:{port}", budget=0.5))
        raw = auth.process(signed(zones[1], message()), Client(BAD_IP, "x", "bounce@sender.test"))
    finally:
        silent.close()
    found = results(auth, raw, Client(BAD_IP, "x", "bounce@sender.test"))
    assert found == {"spf": ["temperror"], "dkim": ["temperror"], "dmarc": ["temperror"]}
    verdicts = auth.verdicts(raw)
    assert "FAIL" not in (verdicts.spf, verdicts.dkim, verdicts.dmarc) and verdicts.dmarc_policy is None


def test_no_resolver_configured_is_temperror_too() -> None:
    auth = Authenticator("own", AUTHSERV, Resolver(None))
    raw = auth.process(message(), Client(BAD_IP, "x", "bounce@sender.test"))
    assert auth.verdicts(raw).dmarc == "PROCESSING_FAILED"


RELAYED = (
    b"Authentication-Results: filter.example.net; spf=fail smtp.mailfrom=sender.test;\r\n"
    b"\tdkim=none; dmarc=fail (p=reject dis=none) header.from=sender.test\r\n"
    b"Authentication-Results: othermail.example; dmarc=pass\r\n"
)


def test_trusted_relay_header_is_honoured_only_from_the_relay_with_its_id() -> None:
    relays = [__import__("ipaddress").ip_network("10.1.0.0/16")]
    auth = Authenticator("trusted-relay", AUTHSERV, trusted_authserv_id="filter.example.net", trusted_relays=relays)
    raw = auth.process(RELAYED + message(), Client("10.1.2.3", "relay", "bounce@sender.test"))
    assert raw.count(b"Authentication-Results:") == 1
    assert auth.verdicts(raw) == Verdicts(spf="FAIL", dkim="GRAY", dmarc="FAIL", dmarc_policy="reject")
    mapped = auth.process(RELAYED + message(), Client("::ffff:10.1.2.3", "relay", "bounce@sender.test"))
    assert auth.verdicts(mapped).dmarc == "FAIL"  # a listener on :: sees IPv4 clients so
    elsewhere = auth.process(RELAYED + message(), Client("192.0.2.99", "relay", "bounce@sender.test"))
    assert auth.verdicts(elsewhere) == NO_VERDICT and elsewhere.count(b"Authentication-Results:") == 1
    other_id = Authenticator("trusted-relay", AUTHSERV, trusted_authserv_id="rspamd.example.net", trusted_relays=relays)
    assert other_id.verdicts(other_id.process(RELAYED + message(), Client("10.1.2.3", "r", ""))) == NO_VERDICT


def test_off_checks_nothing_but_still_strips() -> None:
    auth = Authenticator("off", AUTHSERV)
    raw = auth.process(RELAYED + message(), Client("10.1.2.3", "relay", "bounce@sender.test"))
    assert raw.startswith(b"Authentication-Results: othermail.example; none\r\nFrom:")
    assert auth.verdicts(raw) == NO_VERDICT


@pytest.mark.parametrize(
    ("env", "message_part"),
    [
        ({"OTHERMAIL_INBOUND_AUTH": "trusted-relay"}, "OTHERMAIL_TRUSTED_AUTHSERV_ID and OTHERMAIL_TRUSTED_RELAYS"),
        (
            {"OTHERMAIL_INBOUND_AUTH": "trusted-relay", "OTHERMAIL_TRUSTED_RELAYS": "10.0.0.1"},
            "needs OTHERMAIL_TRUSTED_AUTHSERV_ID",
        ),
        ({"OTHERMAIL_TRUSTED_RELAYS": "10.0.0.1, 10.0.0.0/33"}, "OTHERMAIL_TRUSTED_RELAYS"),
        ({"OTHERMAIL_TRUSTED_AUTHSERV_ID": "a b"}, "OTHERMAIL_TRUSTED_AUTHSERV_ID"),
        ({"OTHERMAIL_INBOUND_AUTH": "spf"}, "OTHERMAIL_INBOUND_AUTH"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], message_part: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert message_part in str(raised.value)


def test_settings_read_the_three_modes() -> None:
    assert Settings.from_env({}).inbound_auth == "own"
    relay = Settings.from_env(
        {
            "OTHERMAIL_INBOUND_AUTH": "trusted-relay",
            "OTHERMAIL_TRUSTED_AUTHSERV_ID": "Filter.Example",
            "OTHERMAIL_TRUSTED_RELAYS": "10.0.0.1, 2001:db8::/32",
        }
    )
    assert (relay.trusted_authserv_id, relay.trusted_relays) == ("filter.example", ("10.0.0.1/32", "2001:db8::/32"))
    built = build_authenticator(relay, AUTHSERV)
    assert built.mode == "trusted-relay" and len(built.trusted_relays) == 2
    with pytest.raises(SettingsError, match="OTHERMAIL_INBOUND_AUTH_RESOLVER"):
        build_authenticator(Settings.from_env({"OTHERMAIL_INBOUND_AUTH_RESOLVER": "127.0.0.1:99999"}), AUTHSERV)


# -- end to end: SMTP listener, spool, dispatcher, decision --------------------------------------


class Box:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        settings = Settings.from_env(
            {
                "OTHERMAIL_DATA_DIR": str(tmp_path / "var"),
                "OTHERMAIL_DOMAINS": AUTHSERV,
                "OTHERMAIL_SMTP_HOST": "127.0.0.1",
                **env,
            },
            default_sender="outbox",
        )
        self.sender = MemorySender()
        self.box = OneBox(settings, web_port=None, smtp_port=0, sender=self.sender, workers=1)
        with make_session_factory(self.box.engine)() as session:
            user = ensure_user(session, "owner@example.org")
            target = ensure_destination(session, user, "real@example.org", verified_at=utcnow() - timedelta(days=1))
            session.commit()
            create_alias(session, user, [target], AUTHSERV, utcnow(), local_part="shop")
        self.port = self.box.start().smtp_port

    def send(self, raw: bytes, mail_from: str, helo: str = "mx1.sender.test") -> str:
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname=helo, timeout=30) as client:
            client.sendmail(mail_from, ["shop@othermail.example"], raw)
        deadline = time.monotonic() + 20
        while self.box.spool.pending() and time.monotonic() < deadline:
            self.box.dispatcher.wait_idle(1)
            time.sleep(0.02)
        self.box.dispatcher.wait_idle(10)
        with make_session_factory(self.box.engine)() as session:
            return session.scalars(select(Delivery.outcome).order_by(Delivery.id.desc())).first() or ""


@pytest.fixture
def box(tmp_path: Path) -> Iterator[callable]:
    started: list[Box] = []

    def start(**env: str) -> Box:
        b = Box(tmp_path / str(len(started)), env)
        started.append(b)
        return b

    yield start
    for b in started:
        b.box.stop(timeout=5)


def test_forged_p_reject_mail_is_dropped_on_the_one_box(zones: tuple[KnotZones, bytes], box) -> None:
    """Regression (issue 12.12): the one box gave every message PASS verdicts."""
    one = box(OTHERMAIL_INBOUND_AUTH_RESOLVER=zones[0].nameserver)
    forged = b"Authentication-Results: othermail.example; dmarc=pass header.from=sender.test\r\n" + message()
    assert one.send(forged, "ceo@sender.test") == Outcome.DROPPED_DMARC.value  # 127.0.0.1 is not in its SPF
    assert one.sender.sent == []
    genuine = message("ceo@local.sender.test")
    assert one.send(genuine, "bounce@local.sender.test") == Outcome.FORWARDED.value
    (sent,) = one.sender.sent
    assert b"X-Original-Authentication-Results: othermail.example;" in sent.raw and b"dmarc=pass" in sent.raw


def test_drop_dmarc_reject_off_forwards_forged_mail_with_our_verdict(zones: tuple[KnotZones, bytes], box) -> None:
    one = box(OTHERMAIL_INBOUND_AUTH_RESOLVER=zones[0].nameserver, OTHERMAIL_DROP_DMARC_REJECT="false")
    assert one.send(message(), "ceo@sender.test") == Outcome.FORWARDED.value
    (sent,) = one.sender.sent
    assert b"X-Original-Authentication-Results: othermail.example;" in sent.raw and b"dmarc=fail (p=reject)" in sent.raw


def test_unreachable_dns_still_forwards(box) -> None:
    one = box(OTHERMAIL_INBOUND_AUTH_RESOLVER=f"127.0.0.1:{closed_port()}")
    assert one.send(message(), "ceo@sender.test") == Outcome.FORWARDED.value
    assert b"dmarc=temperror" in one.sender.sent[0].raw


def _reply(to: str, sender: str = "me@sender.test") -> bytes:
    return (
        f"From: Me <{sender}>\r\nTo: {to}\r\nSubject: Re: invoice\r\n"
        "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <r1@sender.test>\r\n\r\n"
        f"Paid. -- Me <{sender}>\r\n"
    ).encode()


def test_replies_pass_or_fail_on_the_box_s_own_spf_dkim_and_dmarc(zones: tuple[KnotZones, bytes], box) -> None:
    """Issue 14: with no filter in front (OTHERMAIL_INBOUND_AUTH=own), the one box checks a reply
    to a reverse address itself against the owner's domain's DNS. A DKIM-signed reply from the
    owner's mailbox leaves from the alias; the same reply unsigned (127.0.0.1 is not in
    sender.test's SPF: DMARC fails) or carrying a forged pass in our own authserv-id is refused
    with 550 5.7.1 after DATA and recorded, never relayed."""
    one = box(OTHERMAIL_INBOUND_AUTH_RESOLVER=zones[0].nameserver)
    with make_session_factory(one.box.engine)() as session:
        from models import Alias

        alias = session.scalars(select(Alias).where(Alias.address == "shop@othermail.example")).one()
        user = alias.user
        alias.destinations.append(ensure_destination(session, user, "me@sender.test", verified_at=utcnow()))
        session.commit()
        alias_id = alias.id
    reverse = one.box.runtime.contacts.create(alias_id, AUTHSERV, "jane@shop.example").reverse

    def deliver(raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", one.port, local_hostname="mx.sender.test", timeout=30) as client:
            client.sendmail("me@sender.test", [reverse], raw)

    forged = b"Authentication-Results: othermail.example; dmarc=pass header.from=sender.test\r\n" + _reply(reverse)
    for raw in (_reply(reverse), forged):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            deliver(raw)
        assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    # the owner's mailboxes hear of it (once an hour); nothing goes to the contact
    assert {m.recipient for m in one.sender.sent} == {"real@example.org", "me@sender.test"}
    assert {m.sender for m in one.sender.sent} == {"noreply@othermail.example"}
    one.sender.sent.clear()

    deliver(signed(zones[1], _reply(reverse)))
    deadline = time.monotonic() + 20
    while not one.sender.sent and time.monotonic() < deadline:
        one.box.dispatcher.wait_idle(1)
    # the copy is sent before its outcome is settled: wait for the forward to finish
    assert one.box.dispatcher.wait_idle(20)
    (sent,) = one.sender.sent
    assert sent.recipient == "jane@shop.example" and sent.sender == "shop@othermail.example"
    assert b"me@sender.test" not in sent.raw and b"From: shop@othermail.example" in sent.raw
    with make_session_factory(one.box.engine)() as session:
        outcomes = session.scalars(select(Delivery.outcome).order_by(Delivery.id)).all()
    assert outcomes == [Outcome.DROPPED_REPLY_REFUSED.value, Outcome.REPLIED.value]


class _PolicyOnly:
    """A dnspython-shaped resolver that knows one DMARC record, p=reject for paypal.example."""

    def resolve(self, qname, rdtype, **kwargs):
        import dns.resolver

        if qname.to_text(omit_final_dot=True) == "_dmarc.paypal.example" and rdtype == "TXT":

            class Rdata:
                strings = [b"v=DMARC1; p=reject"]

            class Answer:
                rrset = [Rdata()]

            return Answer()
        raise dns.resolver.NXDOMAIN()


CONTINUATION = (
    b" ; dmarc=pass ; spf=pass\r\nFrom: security@paypal.example\r\nTo: t@alias.example\r\nSubject: s\r\n\r\nbody\r\n"
)


@pytest.mark.parametrize("mode", ["own", "off"])
def test_a_leading_continuation_line_cannot_extend_our_stamp(mode: str) -> None:
    """Review HIGH 1: a DATA that starts with a whitespace line would have continued our field."""
    auth = Authenticator(mode, AUTHSERV, Resolver(_PolicyOnly()))
    raw = auth.process(CONTINUATION, Client("192.0.2.1", "h.evil.example", "b@evil.example"))
    assert b"dmarc=pass" not in raw and b"spf=pass" not in raw
    verdicts = auth.verdicts(raw)
    if mode == "own":
        assert verdicts.dmarc == "FAIL" and verdicts.dmarc_policy == "reject"
    else:
        assert verdicts == NO_VERDICT


@pytest.mark.parametrize(
    "sender",
    [
        b"security@paypal.example\x00",
        b"security@paypal.example\x1b",
        b"<security@paypal.example\x7f>",
        b"security@PayPal.Example.",
        b"security@paypal..example",
        b"security@pay\x00pal.example",
    ],
)
def test_a_control_character_or_a_broken_from_domain_does_not_evade_dmarc(sender: bytes) -> None:
    """Review HIGH 2: the DMARC domain is the domain the reader is shown; one that is no domain
    name fails with p=reject (there is no policy to find, and it can only be forged)."""
    auth = Authenticator("own", AUTHSERV, Resolver(_PolicyOnly()))
    raw = b"From: " + sender + b"\r\nTo: t@alias.example\r\nSubject: s\r\n\r\nbody\r\n"
    verdicts = auth.verdicts(auth.process(raw, Client("192.0.2.1", "h.evil.example", "b@evil.example")))
    assert (verdicts.dmarc, verdicts.dmarc_policy) == ("FAIL", "reject")


def test_the_verdicts_travel_in_the_spool_envelope_not_in_the_message(tmp_path: Path) -> None:
    """Review HIGH 1 (the lasting fix): the dispatcher takes the verdicts the listener computed
    from the spool envelope, so no byte of the message, however it parses, can change them."""
    from forwarder.adapters.local.spool import Spool
    from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
    from forwarder.adapters.stores import LocalStore
    from forwarder.hosts.dispatch import Dispatcher

    auth = Authenticator("own", AUTHSERV, Resolver(_PolicyOnly()))
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    accepted: list[str] = []
    handler = IngressHandler(("alias.example",), spool, lambda a: True, accepted.append, authenticate=auth.authenticate)
    listener = SmtpListener(handler, "127.0.0.1", 0, 1_000_000)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            client.sendmail(
                "b@evil.example",
                ["t@alias.example"],
                b"From: security@paypal.example\r\nTo: t@alias.example\r\nSubject: s\r\n\r\nbody\r\n",
            )
    finally:
        listener.stop()
        auth.close()
    (spool_id,) = accepted
    recorded = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail")).envelope(spool_id).verdicts  # from disk
    assert recorded is not None and (recorded.dmarc, recorded.dmarc_policy) == ("FAIL", "reject")

    class Seen:
        inbound = None

        def process(self, raw: bytes, inbound):  # the pipeline's entry point
            Seen.inbound = inbound
            return []

    key = spool.envelope(spool_id).key
    forged = b"Authentication-Results: " + AUTHSERV.encode() + b"; spf=pass; dkim=pass; dmarc=pass\r\n"
    spool.store.put(key, forged + spool.store.get(key))  # whatever the stored bytes say
    spool = Spool(tmp_path / "spool", LocalStore(tmp_path / "mail"))
    dispatcher = Dispatcher(spool, Seen(), workers=1, verdicts=auth.verdicts)
    try:
        dispatcher._forward_once(spool_id, 0)
    finally:
        dispatcher.close(timeout=5)
    assert Seen.inbound is not None and Seen.inbound.verdicts == recorded
