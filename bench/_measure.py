"""Helpers for bench/rewrite.py: the generated messages, and the Lambda memory child.

Run as a child process by bench/rewrite.py (not meant to be run by hand, though it can be)::

    python bench/_measure.py memory --s3 memory --size 40000000

It builds a warm LambdaRuntime (SQLite database migrated with ``migrations.upgrade``, one alias
with one verified destination, ``MemorySender``), handles a small message to warm it, records
the idle RSS, then handles one large message while the peak RSS is captured, and prints one JSON
line. ``--s3`` chooses what serves the raw message:

- ``moto``: moto's S3 (``mock_aws``), a bucket and a verified SES domain, as the tests do;
- ``memory``: a tiny stand-in whose ``get_object`` returns ``{"Body": io.BytesIO(data)}`` (a
  BytesIO shares its initial bytes, so ``read()`` hands back the stored object: no copy at all);
- ``memory-download``: the same, but ``Body`` holds a fresh copy of the stored bytes, which is what
  a real S3 download materialises in the Lambda process (one buffer of the message size).
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import gc
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ALIAS = "shop-7hq2@othermail.example"
DESTINATION = "owner@owner.example"
REGION = "us-east-1"
BUCKET = "othermail-inbound"
PREFIX = "inbound/"
DOMAINS = ("othermail.example",)
SEED = 20261123

_WORDS = (
    "the quarterly report is attached please review the figures before our meeting on thursday "
    "we moved the deadline by one week because the supplier confirmed the delivery late and the "
    "numbers for october are still being checked by finance let me know if anything looks wrong "
    "thanks again for your help with the migration it went smoothly and nobody noticed downtime"
).split()


def _common_headers(rng: random.Random, content_type: bytes) -> list[bytes]:
    msg_id = b"%016x" % rng.getrandbits(64)
    sig = base64.b64encode(rng.randbytes(192))
    return [
        b"Return-Path: <jane.doe@example.net>",
        b"Received: from mail-yw1-f170.example.net (mail-yw1-f170.example.net [209.85.128.170])",
        b" by inbound-smtp.us-east-1.amazonaws.com with SMTP id " + msg_id,
        b" for " + ALIAS.encode() + b"; Mon, 23 Nov 2026 10:00:01 +0000 (UTC)",
        b"Received: by mail-yw1-f170.example.net with SMTP id " + msg_id[:8] + b";",
        b" Mon, 23 Nov 2026 02:00:00 -0800 (PST)",
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=20230601;",
        b" h=to:subject:message-id:date:from:mime-version:from:to:cc:subject:date:message-id;",
        b" bh=" + base64.b64encode(rng.randbytes(32)) + b";",
        b" b=" + sig[:70],
        b"  " + sig[70:140],
        b"  " + sig[140:],
        b"MIME-Version: 1.0",
        b"From: Jane Doe <jane.doe@example.net>",
        b"Date: Mon, 23 Nov 2026 11:00:00 +0100",
        b"Message-ID: <CA+" + msg_id + b"@mail.example.net>",
        b"Subject: Quarterly report and next steps",
        b"To: " + ALIAS.encode(),
        b"Content-Type: " + content_type,
    ]


def _text_lines(rng: random.Random, nbytes: int) -> list[bytes]:
    lines: list[bytes] = []
    total = 0
    while total < nbytes:
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 64:
            words.append(rng.choice(_WORDS))
        line = " ".join(words).capitalize().encode() + b"."
        lines.append(line)
        total += len(line) + 2
    return lines


def typical_message(size: int = 2048, seed: int = SEED) -> bytes:
    """A plain-text message of about ``size`` bytes (CRLF), headers as a big provider writes them."""
    rng = random.Random(seed)
    head = _common_headers(rng, b'text/plain; charset="UTF-8"')
    head.append(b"Content-Transfer-Encoding: 7bit")
    head_bytes = b"\r\n".join(head) + b"\r\n\r\n"
    body = b"\r\n".join([b"Hi,", b"", *_text_lines(rng, max(0, size - len(head_bytes) - 40)), b"", b"Jane"])
    return head_bytes + body + b"\r\n"


def large_message(size: int, seed: int = SEED) -> bytes:
    """multipart/mixed: a short text part and a base64 attachment (76-character CRLF lines).

    The result is ``size`` bytes give or take one base64 line (78 bytes).
    """
    rng = random.Random(seed)
    boundary = b"000000000000" + b"%016x" % rng.getrandbits(64)
    head = _common_headers(rng, b'multipart/mixed; boundary="' + boundary + b'"')
    head_bytes = b"\r\n".join(head) + b"\r\n\r\n"
    text = b"\r\n".join(
        [
            b"--" + boundary,
            b'Content-Type: text/plain; charset="UTF-8"',
            b"",
            *_text_lines(rng, 400),
            b"",
            b"",
        ]
    )
    attach_head = b"\r\n".join(
        [
            b"--" + boundary,
            b'Content-Type: application/pdf; name="report-q3.pdf"',
            b'Content-Disposition: attachment; filename="report-q3.pdf"',
            b"Content-Transfer-Encoding: base64",
            b"Content-ID: <f_" + b"%08x" % rng.getrandbits(32) + b">",
            b"X-Attachment-Id: f_" + b"%08x" % rng.getrandbits(32),
            b"",
            b"",
        ]
    )
    tail = b"--" + boundary + b"--\r\n"
    room = size - len(head_bytes) - len(text) - len(attach_head) - len(tail)
    lines = max(1, room // 78)  # 76 characters + CRLF, 57 raw bytes per line
    encoded = base64.encodebytes(rng.randbytes(lines * 57)).replace(b"\n", b"\r\n")
    return head_bytes + text + attach_head + encoded + tail


def many_headers(lines: int) -> bytes:
    """``lines`` header lines (a few real fields, then fillers), CRLF, and no blank line after them."""
    top = [
        b"From: Jane Doe <jane.doe@example.net>",
        b"To: " + ALIAS.encode(),
        b"Subject: many header lines",
        b"Date: Mon, 23 Nov 2026 11:00:00 +0100",
        b"Message-ID: <many-headers@mail.example.net>",
    ]
    filler = [b"X-Filler-%06d: value %d of a header block that never ends" % (i, i) for i in range(lines - len(top))]
    return b"\r\n".join(top + filler) + b"\r\n"


# --------------------------------------------------------------------------------------------
# The memory child
# --------------------------------------------------------------------------------------------


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(field.encode() + b":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


class _Sampler(threading.Thread):
    """Reads VmRSS every ``interval`` seconds until stopped; keeps the maximum."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()
        self.active = threading.Event()

    def run(self) -> None:
        fd = os.open("/proc/self/status", os.O_RDONLY)
        try:
            while not self._stop_event.is_set():
                if self.active.is_set():
                    data = os.pread(fd, 4096, 0)
                    start = data.index(b"VmRSS:")
                    value = int(data[start + 6 : data.index(b"kB", start)]) * 1024
                    self.peak = max(self.peak, value)
                    self.samples += 1
                time.sleep(self.interval)
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _malloc_trim() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _MemoryS3:
    """A stand-in for the S3 client: ``get_object`` returns ``{"Body": io.BytesIO(data)}``."""

    def __init__(self, copy_on_get: bool) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.copy_on_get = copy_on_get

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict:  # noqa: N803 (boto3 names)
        self.objects[(Bucket, Key)] = Body
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
        data = self.objects[(Bucket, Key)]
        if self.copy_on_get:
            data = bytes(memoryview(data))  # what a download materialises: a new buffer
        return {"Body": io.BytesIO(data)}


class _MemorySession:
    """Enough of a boto3 session for LambdaRuntime.from_settings: S3 is the stand-in; the SES
    client is never called (the sender is replaced by MemorySender)."""

    def __init__(self, s3: _MemoryS3) -> None:
        self.s3 = s3

    def client(self, name: str) -> object:
        return self.s3 if name == "s3" else object()


def _ses_event(message_id: str, *recipients: str) -> dict:
    receipt = {"recipients": list(recipients), "action": {"type": "Lambda", "invocationType": "Event"}}
    for name in ("spam", "virus", "spf", "dkim", "dmarc"):
        receipt[f"{name}Verdict"] = {"status": "PASS"}
    mail = {
        "messageId": message_id,
        "source": "jane.doe@example.net",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "destination": list(recipients),
    }
    return {"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {"mail": mail, "receipt": receipt}}]}


def _add_alias(database_url: str) -> None:
    from forwarder.accounts import ensure_destination, ensure_user
    from models import Alias, make_engine, make_session_factory, utcnow

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            now = utcnow()
            user = ensure_user(db, DESTINATION)
            target = ensure_destination(db, user, DESTINATION, verified_at=now)
            alias = Alias(address=ALIAS, user_id=user.id, created_at=now)
            alias.destinations.append(target)
            db.add(alias)
            db.commit()
    finally:
        engine.dispose()


def memory_child(s3_kind: str, size: int) -> dict:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ["AWS_DEFAULT_REGION"] = REGION

    import migrations
    from forwarder.adapters.senders import MemorySender
    from forwarder.hosts.lambda_handler import LambdaRuntime
    from forwarder.settings import Settings

    tmp = tempfile.TemporaryDirectory(prefix="othermail-bench-")
    database_url = f"sqlite:///{Path(tmp.name) / 'othermail.db'}"
    migrations.upgrade(database_url)
    _add_alias(database_url)
    settings = Settings(
        database_url=database_url, s3_bucket=BUCKET, s3_prefix=PREFIX, domains=DOMAINS, aws_region=REGION
    )

    mock = None
    if s3_kind == "moto":
        import boto3
        from moto import mock_aws

        mock = mock_aws()
        mock.start()
        session = boto3.session.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        session.client("ses").verify_domain_identity(Domain=DOMAINS[0])
    else:
        s3 = _MemoryS3(copy_on_get=(s3_kind == "memory-download"))
        session = _MemorySession(s3)

    runtime = LambdaRuntime.from_settings(settings, session=session)
    sender = MemorySender()
    runtime.forwarder.sender = sender

    small = typical_message()
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "warm-1", Body=small)
    warm = runtime.handle(_ses_event("warm-1", ALIAS))

    big = large_message(size)
    big_size = len(big)
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "big-1", Body=big)
    del big  # from here on only the store holds it (moto's backend, or the stand-in's dict)
    sent_before = len(sender.sent)

    sampler = _Sampler(0.001)
    sampler.start()
    gc.collect()
    trimmed = _malloc_trim()
    time.sleep(0.05)
    idle = _status("VmRSS")
    hwm_reset = _reset_hwm()
    sampler.peak = idle
    sampler.active.set()
    started = time.perf_counter()
    summary = runtime.handle(_ses_event("big-1", ALIAS))
    elapsed = time.perf_counter() - started
    sampler.active.clear()
    hwm = _status("VmHWM")
    after = _status("VmRSS")
    sampler.stop()

    sent = sender.sent[sent_before:]
    result = {
        "s3": s3_kind,
        "size": big_size,
        "idle": idle,
        "hwm": hwm if hwm_reset else None,
        "hwm_reset": hwm_reset,
        "sampled_peak": sampler.peak,
        "samples": sampler.samples,
        "after": after,
        "handle_seconds": elapsed,
        "outcomes": summary.get("outcomes", {}),
        "warm_outcomes": warm.get("outcomes", {}),
        "sent_bytes": [len(m.raw) for m in sent],
        "malloc_trim": trimmed,
    }
    runtime.close()
    if mock is not None:
        mock.stop()
    tmp.cleanup()
    return result


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mem = sub.add_parser("memory", help="peak RSS of the warm Lambda handler on one large message")
    mem.add_argument("--s3", choices=("moto", "memory", "memory-download"), required=True)
    mem.add_argument("--size", type=int, default=40_000_000)
    args = parser.parse_args(argv)
    if args.command == "memory":
        print(json.dumps(memory_child(args.s3, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
