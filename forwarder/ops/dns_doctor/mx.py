"""The MX checks: SES receiving on the domain, and the custom MAIL FROM domain's MX."""

from __future__ import annotations

import re
from typing import Any

from forwarder.ops.dns_doctor.report import Finding, Record, Status, error, finding, missing
from forwarder.ops.dns_doctor.resolver import Answer


def _host(rdata: Any) -> str:
    return rdata.exchange.to_text(omit_final_dot=True).lower()


def check_mx(
    record: Record,
    answer: Answer,
    host: str,
    pattern: re.Pattern[str],
    found_message: str,
    missing_message: str,
    strict: bool,
) -> Finding:
    """SES's MX must be the one mail goes to first; ``strict``: no other MX at all (MAIL FROM)."""
    if answer.error:
        return error(record, answer)
    ordered = sorted(answer.rdatas, key=lambda r: (r.preference, _host(r)))
    values = [r.to_text() for r in ordered]
    if not ordered:
        what = "the name does not exist" if answer.nxdomain else "no MX record"
        return missing(record, f"{what}: {missing_message}")
    ses = [r for r in ordered if _host(r) == host]
    others = [r for r in ordered if _host(r) != host]
    region = host.split(".")[1]
    if not ses:
        regions = [m.group(1) for r in others if (m := pattern.match(_host(r)))]
        if regions:
            message = f"the MX points at SES in {', '.join(regions)}, not in {region} (see --region)"
        else:
            message = f"no MX points at {host}"
        return finding(record, Status.WRONG, values, message, fix=record, remove=values)
    best = min(r.preference for r in ses)
    wrong = others if strict else [r for r in others if r.preference <= best]
    if wrong:
        names = ", ".join(r.to_text() for r in wrong)
        if strict:
            message = f"MX records other than SES's ({names}): remove them"
        else:
            message = f"mail goes to {names} before or alongside SES: remove it, or give SES the lowest number"
        return finding(record, Status.WRONG, values, message, remove=[r.to_text() for r in wrong])
    message = f"{found_message} {region}"
    if best != 10:
        message += f" (priority {best}; 10 is the usual value, any works when it is the lowest)"
    if others:
        message += f"; backup MX {', '.join(r.to_text() for r in others)} is tried only when SES does not answer"
    return finding(record, Status.FOUND, values, message)
