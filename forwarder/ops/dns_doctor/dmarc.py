"""The DMARC check: one ``_dmarc`` record with a valid policy (recommended, never required)."""

from __future__ import annotations

from forwarder.ops.dns_doctor.records import quote
from forwarder.ops.dns_doctor.report import Finding, Record, Status, error, finding, missing
from forwarder.ops.dns_doctor.resolver import Answer, txt


def _dmarc_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def check_dmarc(record: Record, answer: Answer) -> Finding:
    if answer.error:
        return error(record, answer)
    texts = [txt(r) for r in answer.rdatas]
    dmarc = [t for t in texts if t.strip().lower().startswith("v=dmarc1")]
    found = [quote(t) for t in dmarc]
    if not dmarc:
        return missing(
            record,
            "no DMARC record: anyone can send mail that claims to come from the domain; "
            "publish one with p=quarantine or p=reject",
        )
    if len(dmarc) > 1:
        return finding(
            record,
            Status.WRONG,
            found,
            f"{len(dmarc)} DMARC records: receivers then ignore DMARC (RFC 7489 section 6.6.3); keep one",
            fix=record,
            remove=found,
        )
    policy = _dmarc_tags(dmarc[0]).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return finding(
            record,
            Status.WRONG,
            found,
            "the DMARC record has no valid policy (p=none, quarantine or reject)",
            fix=record,
            remove=found,
        )
    if policy == "none":
        return finding(
            record,
            Status.FOUND,
            found,
            "policy none only monitors: p=quarantine or p=reject is recommended once reports look right",
        )
    return finding(record, Status.FOUND, found, f"policy {policy}")
