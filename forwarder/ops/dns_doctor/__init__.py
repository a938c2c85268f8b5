"""DNS doctor: are the records an alias domain needs for Amazon SES in place?

Pure functions around a dnspython resolver, shared by ``othermail dns check`` and the web app
(users' own domains). Nothing here prints, exits or reads settings.

- :func:`required_records` lists the exact records to create for a domain.
- :func:`check_domain` asks a resolver for each of them and returns a :class:`Report`: one
  :class:`Finding` per record (found, missing, wrong, error or unchecked) with the values found,
  and for each missing or wrong one the record to create (:attr:`Report.to_create`).

Which records are required and which recommended (:class:`Level`):

- required: the MX to SES inbound (no mail arrives without it), an SPF record on the domain that
  includes ``amazonses.com``, and the three Easy DKIM CNAMEs (forwarded mail is sent *from the
  alias*, so SES must sign for the domain, and DKIM is what makes forwarded mail pass DMARC).
- recommended: DMARC (``_dmarc``) and the custom MAIL FROM domain (its MX and SPF). Forwarded mail
  passes DMARC through aligned DKIM without them; a DMARC record with ``p=quarantine`` or
  ``p=reject`` stops others from spoofing the alias domain, and a custom MAIL FROM domain adds
  aligned SPF and keeps ``amazonses.com`` out of the Return-Path.

A report is ``ok`` when every required record is found; recommended ones never make it fail.

The modules: ``records`` (the names and the records to create), ``resolver`` (asking DNS), one
module per record family (``mx``, ``spf``, ``dkim``, ``dmarc``), ``check`` (:func:`check_domain`),
``report`` (what is found) and ``render`` (the CLI's text). Import the names from this package.
"""

from __future__ import annotations

from forwarder.ops.dns_doctor.check import Expected, check_domain
from forwarder.ops.dns_doctor.records import (
    DEFAULT_MAIL_FROM_LABEL,
    DMARC_SUGGESTED,
    MAIL_FROM_SPF,
    SES_DKIM_DOMAIN,
    SPF_INCLUDE,
    check_token,
    dkim_target,
    feedback_host,
    inbound_host,
    mail_from_domain,
    normalize_domain,
    required_records,
)
from forwarder.ops.dns_doctor.render import render, summary
from forwarder.ops.dns_doctor.report import TTL, Finding, Level, Record, Report, Status, replace_value
from forwarder.ops.dns_doctor.resolver import HINTS, Answer, describe_servers, make_resolver, parse_nameserver

__all__ = [
    "DEFAULT_MAIL_FROM_LABEL",
    "DMARC_SUGGESTED",
    "HINTS",
    "MAIL_FROM_SPF",
    "SES_DKIM_DOMAIN",
    "SPF_INCLUDE",
    "TTL",
    "Answer",
    "Expected",
    "Finding",
    "Level",
    "Record",
    "Report",
    "Status",
    "check_domain",
    "check_token",
    "describe_servers",
    "dkim_target",
    "feedback_host",
    "inbound_host",
    "mail_from_domain",
    "make_resolver",
    "normalize_domain",
    "parse_nameserver",
    "render",
    "replace_value",
    "required_records",
    "summary",
]
