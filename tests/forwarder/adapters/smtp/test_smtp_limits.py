"""Issue 12.13: probing for aliases over SMTP is slowed down, capped per session and per client IP,
and counted; known aliases keep being accepted below the caps. Delays are tiny here: no timing is
asserted, only replies, disconnections and counters."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forwarder.adapters.local.spool import Spool
from forwarder.adapters.smtp.ingress import IngressHandler, SmtpListener
from forwarder.adapters.smtp.limits import FailedRcpts, SmtpLimits
from forwarder.adapters.stores import MemoryStore
from forwarder.ops.metrics import Metrics, prometheus_text

KNOWN = {"shop@othermail.example"}
FAST = SmtpLimits(
    failed_rcpt_per_session=5, failed_rcpt_per_ip=8, failed_rcpt_window_seconds=600, tarpit_step_ms=1, tarpit_max_ms=3
)


class Box:
    def __init__(self, tmp_path: Path, limits: SmtpLimits) -> None:
        self.metrics = Metrics()
        handler = IngressHandler(
            ("othermail.example",),
            Spool(tmp_path / "spool", MemoryStore()),
            lambda a: a.lower() in KNOWN,
            lambda _: None,
            limits=limits,
            metrics=self.metrics,
        )
        self.listener = SmtpListener(handler, "127.0.0.1", 0, 100_000)

    def client(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.listener.port, timeout=10)
        client.ehlo()
        client.mail("probe@example.net")
        return client


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Callable[[SmtpLimits], Box]]:
    started: list[Box] = []

    def start(limits: SmtpLimits = FAST) -> Box:
        made = Box(tmp_path / str(len(started)), limits)
        made.listener.start()
        started.append(made)
        return made

    yield start
    for made in started:
        made.listener.stop()


def _probe(client: smtplib.SMTP, count: int) -> list[int]:
    codes = []
    for n in range(count):
        try:
            codes.append(client.rcpt(f"guess{n}@othermail.example")[0])
        except smtplib.SMTPServerDisconnected:
            codes.append(-1)
            break
    return codes


def test_hammering_unknown_recipients_is_disconnected_after_the_session_cap(box: Callable[[SmtpLimits], Box]) -> None:
    server = box(FAST)
    client = server.client()
    assert client.rcpt("shop@othermail.example")[0] == 250  # known aliases are fine
    codes = _probe(client, 50)
    assert codes[:4] == [550] * 4
    assert codes[4] == 421 and codes[-1] == -1 and len(codes) == 6  # the 5th miss: 421, then closed
    client.close()
    counts = server.metrics.snapshot()
    assert counts["smtp:rcpt-unknown"] == 5 and counts["smtp:rcpt-disconnected"] == 1


def test_a_new_connection_from_the_same_ip_is_limited_too(box: Callable[[SmtpLimits], Box]) -> None:
    server = box(FAST)
    first = server.client()
    assert _probe(first, 50)[-1] == -1  # 5 misses
    first.close()
    second = server.client()
    codes = _probe(second, 50)
    # 3 more misses make 8 from this IP in the window: the third is answered 421
    assert codes == [550, 550, 421, -1]
    second.close()
    third = server.client()
    code, text = third.rcpt("shop@othermail.example")  # even a known alias waits until the window passes
    assert code == 421 and b"4.7.0" in text
    third.close()
    assert server.metrics.snapshot()["smtp:rcpt-throttled"] >= 1


def test_known_aliases_are_accepted_under_the_caps(box: Callable[[SmtpLimits], Box]) -> None:
    server = box(FAST)
    with server.client() as client:
        assert _probe(client, 3) == [550, 550, 550]
        assert [client.rcpt("shop@othermail.example")[0] for _ in range(20)] == [250] * 20
        assert client.data(b"Subject: hi\r\n\r\nbody\r\n")[0] == 250


def test_the_counters_are_in_the_prometheus_text(box: Callable[[SmtpLimits], Box]) -> None:
    server = box(FAST)
    client = server.client()
    _probe(client, 50)
    client.close()
    text = prometheus_text(server.metrics.snapshot())
    samples = {
        (s.name, s.labels.get("event")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("othermail_smtp_events_total", "rcpt-unknown")] == 5
    assert samples[("othermail_smtp_events_total", "rcpt-disconnected")] == 1
    outcomes = [
        s.labels["outcome"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "othermail_messages_total"
    ]
    assert outcomes and not any("smtp" in outcome for outcome in outcomes)  # not mistaken for message outcomes
    quiet = {
        (s.name, s.labels.get("event")): s.value
        for family in text_string_to_metric_families(prometheus_text({}))
        for s in family.samples
    }
    assert quiet[("othermail_smtp_events_total", "rcpt-throttled")] == 0  # every series from the start


def test_the_sliding_window_forgets_old_misses() -> None:
    clock = [0.0]
    window = FailedRcpts(SmtpLimits(failed_rcpt_per_ip=3, failed_rcpt_window_seconds=60), clock=lambda: clock[0])
    for _ in range(3):
        window.add("192.0.2.1")
    assert window.blocked("192.0.2.1") and not window.blocked("192.0.2.2")
    clock[0] = 30.0
    assert window.blocked("192.0.2.1")
    clock[0] = 61.0
    assert not window.blocked("192.0.2.1") and window.count("192.0.2.1") == 0


def test_the_tarpit_grows_with_misses_and_is_capped() -> None:
    limits = SmtpLimits(tarpit_step_ms=200, tarpit_max_ms=1000)
    assert [limits.tarpit_seconds(n) for n in (0, 1, 2, 5, 50)] == [0.0, 0.2, 0.4, 1.0, 1.0]


def test_the_limits_come_from_settings_with_sane_defaults() -> None:
    from forwarder.settings import Settings

    default = Settings.from_env({}).smtp_limits
    assert default == SmtpLimits() and 0 < default.failed_rcpt_per_session < default.failed_rcpt_per_ip
    assert default.tarpit_step_ms > 0 and default.max_sessions_per_ip > 0
    tuned = Settings.from_env(
        {
            "OTHERMAIL_SMTP_MAX_FAILED_RCPT": "3",
            "OTHERMAIL_SMTP_MAX_FAILED_RCPT_PER_IP": "7",
            "OTHERMAIL_SMTP_TARPIT_STEP_MS": "0",
            "OTHERMAIL_SMTP_MAX_SESSIONS_PER_IP": "2",
        }
    )
    assert tuned.smtp_limits.failed_rcpt_per_session == 3 and tuned.smtp_limits.failed_rcpt_per_ip == 7
    assert tuned.smtp_limits.tarpit_seconds(5) == 0.0 and tuned.smtp_limits.max_sessions_per_ip == 2


def test_ipv6_clients_are_counted_by_their_64() -> None:
    from forwarder.adapters.smtp.limits import SessionGate, client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7" and client_key("192.0.2.7") == "192.0.2.7"
    window = FailedRcpts(SmtpLimits(failed_rcpt_per_ip=2))
    window.add("2001:db8:1:2::1")
    window.add("2001:db8:1:2::2")
    assert window.blocked("2001:db8:1:2:ffff::3") and not window.blocked("2001:db8:9::1")
    gate = SessionGate(SmtpLimits(max_sessions=0, max_sessions_per_ip=1))
    assert gate.enter("2001:db8:1:2::1") and not gate.enter("2001:db8:1:2::2")
    gate.leave("2001:db8:1:2::1")
    assert gate.enter("2001:db8:1:2::2")


# --- review LOW 6: wider networks, a global budget, least-recently-seen eviction ----------------


@pytest.mark.parametrize(
    ("sources", "blocked", "free"),
    [
        ([f"192.0.2.{n}" for n in range(1, 6)], "192.0.2.200", "192.0.3.1"),  # IPv4 /24
        ([f"2001:db8:1:{n:x}::1" for n in range(1, 6)], "2001:db8:1:ffff::9", "2001:db8:2::1"),  # IPv6 /48
    ],
)
def test_misses_spread_over_a_network_block_the_network(sources: list[str], blocked: str, free: str) -> None:
    window = FailedRcpts(SmtpLimits(failed_rcpt_per_ip=100, failed_rcpt_per_network=5))
    for ip in sources:
        window.add(ip)
        assert window.count(ip) == 1  # no single address or /64 near its cap
    assert window.blocked(blocked) and window.blocked(sources[0]) and not window.blocked(free)


def test_over_the_global_budget_every_rcpt_is_tarpitted() -> None:
    window = FailedRcpts(
        SmtpLimits(
            failed_rcpt_per_ip=100,
            failed_rcpt_per_network=100,
            failed_rcpt_global=3,
            tarpit_step_ms=100,
            tarpit_max_ms=2000,
        )
    )
    assert window.delay("198.51.100.7") == 0.0
    for n in range(3):
        window.add(f"203.0.{n}.1")
    assert window.delay("198.51.100.7") == 2.0  # a client that never missed, too
    assert not window.blocked("198.51.100.7")  # slowed down, not refused


def test_the_tracking_table_forgets_the_least_recently_seen_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import forwarder.adapters.smtp.limits as smtp_limits

    monkeypatch.setattr(smtp_limits, "MAX_TRACKED_IPS", 3)
    window = FailedRcpts(SmtpLimits(failed_rcpt_per_ip=100, failed_rcpt_per_network=0))
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"):
        window.add(ip)
    window.add("192.0.2.4")  # the table is full: 192.0.2.2 was seen least recently
    assert window.count("192.0.2.1") == 2 and window.count("192.0.2.2") == 0
    assert window.count("192.0.2.3") == 1 and window.count("192.0.2.4") == 1


def test_the_listener_slows_every_rcpt_past_the_global_budget(box: Callable[[SmtpLimits], Box]) -> None:
    server = box(
        SmtpLimits(
            failed_rcpt_per_session=50, failed_rcpt_per_ip=50, failed_rcpt_global=3, tarpit_step_ms=1, tarpit_max_ms=3
        )
    )
    client = server.client()
    assert client.rcpt("shop@othermail.example")[0] == 250
    assert server.metrics.snapshot().get("smtp:rcpt-tarpit-global", 0) == 0
    assert _probe(client, 3) == [550, 550, 550]
    assert client.rcpt("shop@othermail.example")[0] == 250  # still accepted, after the delay
    assert server.metrics.snapshot()["smtp:rcpt-tarpit-global"] >= 2
    client.quit()


def test_an_address_is_parsed_once_not_at_every_rcpt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each RCPT asks whether its client is blocked, by IP and by network: parsing the address
    with ipaddress twice per RCPT cost the listener ~20 us a message (issue 15.6). The keys of
    an address are remembered (a bounded cache: they never change)."""
    import ipaddress

    from forwarder.adapters.smtp import limits

    limits.client_key.cache_clear()
    limits.network_key.cache_clear()
    parsed: list[str] = []
    real = ipaddress.ip_address

    def counting(text: str):  # type: ignore[no-untyped-def]
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(limits.ipaddress, "ip_address", counting)
    rcpts = FailedRcpts(SmtpLimits())
    for _ in range(50):
        assert not rcpts.blocked("198.51.100.7")
    rcpts.add("198.51.100.7")
    assert parsed == ["198.51.100.7", "198.51.100.7"]  # once for its IP key, once for its network's
    assert rcpts.count("198.51.100.7") == 1 and rcpts.network_count("198.51.100.9") == 1
