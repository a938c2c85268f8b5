"""Who may send through a reverse address: a verified destination of the alias, authenticated.

Mail to a reverse address leaves from the alias, so a forged one would let anybody write as the
alias to its contacts. It goes out only when both hold:

- the From address is one of the alias's verified destinations (compared case-insensitively);
- the receiving side authenticated it: DMARC passed, or the From domain publishes no DMARC record
  (verdict GRAY) and SPF passed for an envelope sender on the From domain or one of its
  subdomains (aligned). A DKIM pass alone is not enough: without DMARC nothing ties the signing
  domain to From.

Verdicts come from the SES receipt event on Lambda and from the one box's own checks (or the
trusted relay's Authentication-Results) on the one box; verdicts that were not measured
(``DISABLED``) never authorize.
"""

from __future__ import annotations

from collections.abc import Collection

from forwarder.core.decide import Verdicts
from forwarder.core.outcomes import Decision, Outcome


def _domain(address: str | None) -> str:
    if not address or "@" not in address:
        return ""
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def aligned(envelope_from: str | None, from_address: str) -> bool:
    """Whether the envelope sender's domain is the From domain or one of its subdomains (or the
    other way round): relaxed alignment without a public-suffix list, which only errs strict."""
    envelope, header = _domain(envelope_from), _domain(from_address)
    if not envelope or not header:
        return False
    return envelope == header or envelope.endswith("." + header) or header.endswith("." + envelope)


def authorize_reply(
    verdicts: Verdicts, *, from_address: str | None, envelope_from: str | None, destinations: Collection[str]
) -> Decision | None:
    """None when the message may leave from the alias; otherwise the refusal and why."""
    sender = (from_address or "").strip().lower()
    if not sender or sender not in {d.strip().lower() for d in destinations}:
        return Decision(Outcome.DROPPED_REPLY_REFUSED, "the sender is not a verified destination of this alias")
    if verdicts.dmarc == "PASS":
        return None
    if verdicts.dmarc == "GRAY" and verdicts.spf == "PASS":
        if aligned(envelope_from, sender):
            return None
        return Decision(
            Outcome.DROPPED_REPLY_REFUSED, "SPF passed for an envelope sender not aligned with From, and no DMARC"
        )
    return Decision(
        Outcome.DROPPED_REPLY_REFUSED,
        f"the sender could not be authenticated (DMARC {verdicts.dmarc.lower()}, SPF {verdicts.spf.lower()})",
    )
