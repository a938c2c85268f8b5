"""What FastSMTP (forwarder/adapters/smtp/server.py) relies on inside aiosmtpd and asyncio, beyond
their documented interfaces. pyproject.toml keeps aiosmtpd below 1.5; a release that renames or
reshapes one of these fails here, naming it, instead of deep inside an SMTP session."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from aiosmtpd import smtp

#: SMTP methods FastSMTP overrides or calls: (name, a coroutine function?, its parameters).
METHODS = [
    ("_handle_client", True, ["self"]),
    ("_getaddr", False, ["self", "arg"]),
    ("_call_handler_hook", True, ["self", "command", "args"]),
    ("_set_post_data_state", False, ["self"]),
    ("check_helo_needed", True, ["self", "helo"]),
    ("check_auth_needed", True, ["self", "caller_method"]),
    ("connection_made", False, ["self", "transport"]),
    ("connection_lost", False, ["self", "error"]),
    ("push", True, ["self", "status"]),
    ("smtp_EHLO", True, ["self", "hostname"]),
    ("smtp_AUTH", True, ["self", "arg"]),
    ("smtp_STARTTLS", True, ["self", "arg"]),
    ("smtp_RCPT", True, ["self", "arg"]),
    ("smtp_DATA", True, ["self", "arg"]),
]

#: Attributes an SMTP instance has once made, which FastSMTP reads or sets.
INSTANCE_ATTRIBUTES = [
    "_authenticator",
    "_handle_hooks",
    "_tls_protocol",
    "_original_transport",
    "_decode_data",
    "data_size_limit",
    "enable_SMTPUTF8",
    "event_handler",
    "loop",
    "session",
    "envelope",
    "transport",
    "tls_context",
]

#: Class attributes FastSMTP reads (aiosmtpd's line and local-part limits).
CLASS_ATTRIBUTES = ["line_length_limit", "local_part_limit"]

#: asyncio.StreamReader internals the block-reading DATA loop uses, as aiosmtpd's own loop does.
STREAM_READER_METHODS = [("_wait_for_data", ["self", "func_name"]), ("_maybe_resume_transport", ["self"])]


@pytest.mark.parametrize(("name", "coroutine", "parameters"), METHODS, ids=[m[0] for m in METHODS])
def test_smtp_methods_fastsmtp_builds_on(name: str, coroutine: bool, parameters: list[str]) -> None:
    method = getattr(smtp.SMTP, name, None)
    assert method is not None, f"aiosmtpd.smtp.SMTP.{name} is gone: FastSMTP overrides or calls it"
    assert inspect.iscoroutinefunction(method) is coroutine, f"aiosmtpd.smtp.SMTP.{name}: coroutine or not changed"
    found = list(inspect.signature(method).parameters)
    assert found == parameters, f"aiosmtpd.smtp.SMTP.{name} now takes {found}, FastSMTP expects {parameters}"


def test_module_names_fastsmtp_imports() -> None:
    assert hasattr(smtp, "MISSING"), "aiosmtpd.smtp.MISSING is gone: FastSMTP compares hook results with it"
    assert callable(getattr(smtp, "syntax", None)), "aiosmtpd.smtp.syntax is gone: FastSMTP decorates smtp_EHLO"


@pytest.mark.parametrize("name", CLASS_ATTRIBUTES)
def test_class_attributes_fastsmtp_reads(name: str) -> None:
    assert isinstance(getattr(smtp.SMTP, name, None), int), f"aiosmtpd.smtp.SMTP.{name} is gone or not a number"


def test_instance_attributes_fastsmtp_reads() -> None:
    async def made() -> Any:
        return smtp.SMTP(object())

    server = asyncio.run(made())
    missing = [name for name in INSTANCE_ATTRIBUTES if not hasattr(server, name)]
    assert missing == [], f"aiosmtpd.smtp.SMTP instances no longer have {missing}: FastSMTP reads them"


def test_the_streams_fastsmtp_reads_are_set_when_a_client_connects() -> None:
    callback = getattr(smtp.SMTP, "_cb_client_connected", None)
    assert callback is not None, "aiosmtpd.smtp.SMTP._cb_client_connected is gone: it set the streams FastSMTP reads"
    source = inspect.getsource(callback)
    for name in ("self._reader", "self._writer"):
        assert f"{name} =" in source, f"aiosmtpd's SMTP no longer sets {name} for a client: FastSMTP reads it"


@pytest.mark.parametrize(("name", "parameters"), STREAM_READER_METHODS, ids=[m[0] for m in STREAM_READER_METHODS])
def test_stream_reader_internals(name: str, parameters: list[str]) -> None:
    method = getattr(asyncio.StreamReader, name, None)
    assert method is not None, f"asyncio.StreamReader.{name} is gone: FastSMTP's DATA reader calls it"
    assert list(inspect.signature(method).parameters) == parameters, f"asyncio.StreamReader.{name} changed"


def test_the_stream_reader_keeps_its_buffer_as_a_bytearray() -> None:
    async def buffer() -> Any:
        return asyncio.StreamReader()._buffer  # type: ignore[attr-defined]  # the internal checked here

    assert isinstance(asyncio.run(buffer()), bytearray), "asyncio.StreamReader._buffer is no longer a bytearray"
