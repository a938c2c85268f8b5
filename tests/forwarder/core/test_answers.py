"""forwarder/core/answers.py: the Message-IDs a bounce or an auto-reply answers."""

from __future__ import annotations

from forwarder.core.answers import SCAN_BYTES, answered_ids
from forwarder.core.message import split_message


def test_an_auto_reply_names_what_it_answers_in_in_reply_to_and_references() -> None:
    raw = b"In-Reply-To: <a@x>\r\nReferences: <r@x> <a@x>\r\nSubject: away\r\n\r\nMessage-ID: <body@x>\r\n"
    assert answered_ids(split_message(raw), False) == ["<a@x>", "<r@x>"]  # the body is not read


def test_a_report_names_the_returned_message_s_id() -> None:
    raw = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n"
        b"Message-ID: <dsn@mx>\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nMessage-ID: <not-this@x>\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: a@b\r\nMessage-id:  <sent-1@alias.example>\r\n--b--\r\n"
    )
    assert answered_ids(split_message(raw), True) == ["<sent-1@alias.example>"]


def test_a_huge_report_is_read_only_so_far() -> None:
    late = b"\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <late@x>\r\n"
    raw = b"Subject: x\r\n\r\n" + b"x" * SCAN_BYTES + late
    assert answered_ids(split_message(raw), True) == []


def test_garbage_ids_are_not_ids() -> None:
    raw = b"In-Reply-To: no id here <>\r\n\r\n"
    assert answered_ids(split_message(raw), True) == []


def test_a_huge_references_field_costs_at_most_max_ids_lookups() -> None:
    """Review M1: 66,000 ids in References made one IN (...) query over PostgreSQL's parameter limit."""
    from forwarder.core.answers import MAX_IDS

    refs = b" ".join(b"<r%d@x>" % n for n in range(66_000))
    raw = b"In-Reply-To: <parent@x>\r\nReferences: " + refs + b"\r\n\r\n"
    ids = answered_ids(split_message(raw), False)
    assert len(ids) == MAX_IDS and ids[:3] == ["<parent@x>", "<r65999@x>", "<r65998@x>"]


def test_international_and_folded_returned_headers_are_read() -> None:
    raw = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/global-headers\r\n\r\nMessage-ID:\r\n <sent-2@alias.example>\r\n--b--\r\n"
    )
    assert answered_ids(split_message(raw), True) == ["<sent-2@alias.example>"]
