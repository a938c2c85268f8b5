"""The report as ``othermail dns check`` prints it."""

from __future__ import annotations

from collections.abc import Callable

from forwarder.ops.dns_doctor.report import Level, Report, Status


def render(report: Report, echo: Callable[[str], None]) -> None:
    """The report as the CLI prints it: one block per record, then "Records to create:"."""
    echo(f"DNS check of {report.domain} (SES region {report.region}, asking {report.server})")
    for note in report.notes:
        echo(f"note: {note}")
    echo("")
    for f in report.findings:
        echo(f"{f.status.value:<9} {f.type:<5} {f.name}  ({f.purpose}, {f.level.value})")
        for value in f.found_values:
            echo(f"{'':<16}found: {value}")
        if f.status in (Status.MISSING, Status.WRONG):
            echo(f"{'':<16}expected: {f.fix.value if f.fix else f.expected_value}")
        echo(f"{'':<16}{f.message}")
    rows = [f for f in report.findings if f.status in (Status.MISSING, Status.WRONG) and (f.fix or f.remove)]
    if rows:
        echo("")
        echo("Records to create:")
        for level in Level:
            if not any(f.level is level for f in rows):
                continue
            echo(f"; {level.value}")
            for f in rows:
                if f.level is level:
                    for value in f.remove:
                        echo(f"; remove {f.name}. {f.type} {value}")
                    if f.fix is not None:
                        echo(f.fix.zone_line())
    echo("")
    echo(summary(report))


def summary(report: Report) -> str:
    required = report.by_status(Status.MISSING, Status.WRONG, level=Level.REQUIRED)
    errors = report.by_status(Status.ERROR)
    recommended = report.by_status(Status.MISSING, Status.WRONG, level=Level.RECOMMENDED)
    unchecked = report.by_status(Status.UNCHECKED)
    parts = []
    if not report.domain_exists:
        parts.append(f"{report.domain} does not exist")
    if required:
        parts.append(f"{len(required)} required record(s) missing or wrong")
    if errors:
        parts.append(f"{len(errors)} record(s) could not be checked")
    if recommended:
        parts.append(f"{len(recommended)} recommended record(s) missing or wrong")
    if unchecked:
        parts.append("DKIM not checked (no --dkim-token)")
    verdict = "OK: every required record is in place" if report.ok else "FAIL"
    return f"{verdict}" + (f" ({'; '.join(parts)})" if parts else "")
