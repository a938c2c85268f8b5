"""The SPF checks: the domain's record must include SES, and so must the MAIL FROM domain's."""

from __future__ import annotations

from collections.abc import Sequence

from forwarder.ops.dns_doctor.records import SPF_INCLUDE, quote
from forwarder.ops.dns_doctor.report import Finding, Record, Status, error, finding, missing, replace_value
from forwarder.ops.dns_doctor.resolver import Answer, txt


def _is_spf(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def _is_all(term: str) -> bool:
    return term.lower().lstrip("+-~?") == "all" or term.lower().startswith("redirect=")


def _spf_problem(text: str) -> str:
    """Why this SPF record does not let SES send, or "" when it does."""
    terms = text.split()[1:]
    includes = [i for i, t in enumerate(terms) if t.lower() in (SPF_INCLUDE, "+" + SPF_INCLUDE)]
    if not includes:
        return f"the SPF record does not have {SPF_INCLUDE}, so receivers do not accept SES as a sender"
    alls = [i for i, t in enumerate(terms) if _is_all(t)]
    if alls and alls[0] < includes[0]:
        return f"{SPF_INCLUDE} comes after {terms[alls[0]]!r}, so receivers never reach it"
    return ""


def _spf_fix(spf_texts: Sequence[str]) -> str:
    """One SPF record: every mechanism of ``spf_texts`` plus SES's include, before the final ``all``."""
    terms: list[str] = []
    final = ""
    for text in spf_texts:
        for term in text.split()[1:]:
            if _is_all(term):
                final = final or term
            elif term.lower().lstrip("+") != SPF_INCLUDE and term not in terms:
                terms.append(term)
    return " ".join(["v=spf1", *terms, SPF_INCLUDE, final or "~all"])


def check_spf(record: Record, answer: Answer, name: str, replacement: str | None = None) -> Finding:
    if answer.error:
        return error(record, answer)
    spf = [txt(r) for r in answer.rdatas if _is_spf(txt(r))]
    found = [quote(t) for t in spf]
    if not spf:
        what = "the name does not exist" if answer.nxdomain else f"no v=spf1 TXT record on {name}"
        return missing(record, what)
    if len(spf) > 1:
        fix = replace_value(record, quote(replacement or _spf_fix(spf)))
        return finding(
            record,
            Status.WRONG,
            found,
            f"{len(spf)} v=spf1 records: with more than one, SPF fails for every sender "
            "(permerror, RFC 7208 section 4.5); merge them into one",
            fix=fix,
            remove=found,
        )
    problem = _spf_problem(spf[0])
    if problem:
        fix = replace_value(record, quote(replacement or _spf_fix(spf)))
        return finding(record, Status.WRONG, found, problem, fix=fix, remove=found)
    return finding(record, Status.FOUND, found, f"SPF lets SES send for {name}")
