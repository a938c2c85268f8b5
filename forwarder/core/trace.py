"""Authentication trace fields of an incoming message: strip what a sender forged, stamp our own.

A message that reaches the one box by SMTP can carry any header its sender wrote, including
``Authentication-Results: mx.example; dmarc=pass`` for a domain it does not own. On that path
(see ``forwarder.adapters.inbound_auth``) every such field is removed before the message is stored,
shown or trusted, and the receiving side's own verdict is put on top as one
``Authentication-Results`` field (RFC 8601) under our authserv-id:

- :func:`strip_trace_fields` removes every ``Authentication-Results``, ``Received-SPF`` and
  ``X-SES-*`` field from the header block and nothing else; each remaining byte stays as it was, so
  DKIM signatures over the other fields still verify on the stored copy.
  ``ARC-Authentication-Results`` is kept on purpose: it belongs to an ARC set whose ``ARC-Seal``
  signs it (removing it breaks the chain for anyone who verifies the stored message), it is a
  claim by the sealing domain named in that seal rather than an anonymous one, nothing in
  othermail reads it, and header rule 4 (``forwarder.core.headers``) removes every ``ARC-*``
  field before a message is forwarded.
- :func:`format_authentication_results` writes our field; :func:`stamp` puts it first.
- :func:`parse_authentication_results` reads a field per RFC 8601 (comments kept, because the
  DMARC policy is usually given in one: OpenDMARC writes ``dmarc=fail (p=reject dis=none)``,
  rspamd ``(policy=reject)``); it never raises and never recurses.
- :func:`verdicts_from_results` maps results onto the SES verdict values the decision understands,
  and :func:`stamped_verdicts` reads them back from our own field (only for one box spool entries
  written before the spool envelope recorded the verdicts).

Which lines are fields is decided the way both readers of the stored copy decide it: the core's
splitter (lines end at LF) and Python's ``email`` parser used by the web app (lines end at CR, LF
or CRLF). A field either of them would see is found here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from forwarder.core.decide import Verdicts
from forwarder.core.message import split_message

AUTHENTICATION_RESULTS = "Authentication-Results"
#: Fields removed from every message received on the one box, by lower-case name or prefix.
STRIPPED_NAMES = frozenset({"authentication-results", "received-spf"})
STRIPPED_PREFIXES = ("x-ses-",)

#: What the decision is given when nothing was checked (mode ``off``, no trusted header, a spool
#: entry without our field): not PASS, not FAIL, so it neither blocks nor vouches for anything.
NO_VERDICT = Verdicts(spf="DISABLED", dkim="DISABLED", dmarc="DISABLED")

_FIELD_START = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_ANY_STRIPPED = re.compile(rb"(?:^|[\r\n])(?:authentication-results|received-spf|x-ses-)", re.I)
_SEGMENT = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|\Z)")
_LEADING_CONTINUATION = re.compile(rb"(?:[ \t][^\r\n]*(?:\r\n|\r|\n|\Z))+")
#: Longest field value parsed; a longer one is not ours and is read as no result.
MAX_VALUE_CHARS = 16_384


def _stripped(name: bytes) -> bool:
    key = name.decode("ascii").lower()
    return key in STRIPPED_NAMES or key.startswith(STRIPPED_PREFIXES)


def strip_trace_fields(raw: bytes) -> tuple[bytes, int]:
    """``raw`` without its Authentication-Results, Received-SPF and X-SES-* fields, and how many
    fields were removed. The body and every other header byte are untouched."""
    split = split_message(raw)
    start = raw.find(b"\n") + 1 if "mbox-from-line" in split.repairs else 0
    end = len(raw) - len(split.body)
    block = raw[start:end]
    # Lines before the first field belong to none; left in, they would continue the field
    # stamp() puts in front of them (" ; dmarc=pass" appended to our verdict). Dropped as one.
    lead = _LEADING_CONTINUATION.match(block)
    leading = lead.end() if lead else 0
    if not leading and not _ANY_STRIPPED.search(block):
        return raw, 0
    kept: list[bytes] = []
    removed = 1 if leading else 0
    dropping = False
    block = block[leading:]
    for match in _SEGMENT.finditer(block):
        segment = match.group()
        if not segment:
            break  # \Z matched after the last segment
        line = segment.rstrip(b"\r\n")
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(segment)
            continue
        name = _FIELD_START.match(line)
        dropping = name is not None and _stripped(name.group(1))
        if dropping:
            removed += 1
        else:
            kept.append(segment)
    if not removed:
        return raw, 0
    return raw[:start] + b"".join(kept) + raw[end:], removed


# -- RFC 8601 values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` of an Authentication-Results field, with what it says of itself."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()  # ("smtp.mailfrom", "a@b.example"), lower-case keys
    reason: str = ""
    comments: tuple[str, ...] = ()

    def prop(self, key: str) -> str | None:
        for name, value in self.properties:
            if name == key:
                return value
        return None

    @property
    def policy(self) -> str | None:
        """The DMARC policy a result names (``policy.dmarc=``, or ``p=`` / ``policy=`` in a comment)."""
        named = self.prop("policy.dmarc")
        if named:
            return named.lower()
        for comment in self.comments:
            found = re.search(r"(?:^|[\s;,])(?:p|policy)\s*=\s*([A-Za-z]+)", comment)
            if found:
                return found.group(1).lower()
        return None


@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    authserv_id: str
    results: tuple[MethodResult, ...] = field(default_factory=tuple)


_SPECIALS = frozenset('();="')


def _tokens(value: str) -> list[tuple[str, str]] | None:
    """(kind, text) tokens: ``atom``, ``quoted``, ``comment``, ``;``, ``=``. None when unbalanced."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c in ";=":
            out.append((c, c))
            i += 1
        elif c == '"':
            i += 1
            text: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                text.append(value[i])
                i += 1
            if i >= n:
                return None
            i += 1
            out.append(("quoted", "".join(text)))
        elif c == "(":
            depth, i = 1, i + 1
            begin = i
            while i < n and depth:
                if value[i] == "\\":
                    i += 1
                elif value[i] == "(":
                    depth += 1
                elif value[i] == ")":
                    depth -= 1
                i += 1
            if depth:
                return None
            out.append(("comment", value[begin : i - 1]))
        elif c == ")":
            return None
        else:
            begin = i
            while i < n and value[i] not in _SPECIALS and value[i] not in " \t\r\n":
                i += 1
            out.append(("atom", value[begin:i]))
    return out


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """The authserv-id and results of one field's value; None when it does not parse."""
    if len(value) > MAX_VALUE_CHARS:
        return None
    tokens = _tokens(value)
    if tokens is None:
        return None
    groups: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if token[0] == ";":
            groups.append([])
        else:
            groups[-1].append(token)
    head = [t for t in groups[0] if t[0] != "comment"]
    if not head or head[0][0] not in ("atom", "quoted") or not head[0][1]:
        return None
    if len(head) > 2 or (len(head) == 2 and not head[1][1].isdigit()):
        return None
    results: list[MethodResult] = []
    for group in groups[1:]:
        parsed = _resinfo(group)
        if parsed is not None:
            results.append(parsed)
    return AuthenticationResults(head[0][1].lower(), tuple(results))


def _resinfo(group: list[tuple[str, str]]) -> MethodResult | None:
    comments = tuple(text for kind, text in group if kind == "comment")
    words = [t for t in group if t[0] != "comment"]
    if len(words) < 3 or words[0][0] != "atom" or words[1][0] != "=" or words[2][0] != "atom":
        return None  # "none", or malformed: no result to read
    method = words[0][1].split("/", 1)[0].strip().lower()
    result = words[2][1].lower()
    properties: list[tuple[str, str]] = []
    reason = ""
    rest = words[3:]
    while len(rest) >= 3 and rest[0][0] == "atom" and rest[1][0] == "=" and rest[2][0] in ("atom", "quoted"):
        key, val = rest[0][1].lower(), rest[2][1]
        if key == "reason":
            reason = val
        elif "." in key:
            properties.append((key, val))
        rest = rest[3:]
    return MethodResult(method, result, tuple(properties), reason, comments)


# -- our own field --------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-^_`{|}~.]+")
_MAILBOX = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_COMMENT_SAFE = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e ]")


def _pvalue(value: str) -> str | None:
    """A property value as RFC 8601 allows it (token or dot-atom address), else None (left out)."""
    if _MAILBOX.fullmatch(value) or _TOKEN.fullmatch(value):
        return value
    return None


def format_authentication_results(authserv_id: str, results: Sequence[MethodResult], eol: bytes = b"\r\n") -> bytes:
    """One folded ``Authentication-Results`` field (with its line ending) stating ``results``;
    ``none`` when there are none. Values that are not safe tokens are left out; comment text is
    reduced to printable ASCII without parentheses or backslashes."""
    parts: list[str] = []
    for r in results:
        text = f"{r.method}={r.result}"
        for comment in r.comments:
            text += f" ({_COMMENT_SAFE.sub('', comment)[:200]})"
        for key, value in r.properties:
            shown = _pvalue(value)
            if shown is not None:
                text += f" {key}={shown}"
        parts.append(text)
    head = f"{AUTHENTICATION_RESULTS}: {authserv_id};"
    if not parts:
        return f"{head} none".encode("ascii") + eol
    folded = (";" + eol.decode("ascii") + "\t").join(parts)
    return f"{head}{eol.decode('ascii')}\t{folded}".encode("ascii", "replace") + eol


def stamp(raw: bytes, field_line: bytes) -> bytes:
    """``raw`` with ``field_line`` (a whole field and its line ending) as its first header field."""
    split = split_message(raw)
    if "mbox-from-line" in split.repairs:
        cut = raw.find(b"\n") + 1
        return raw[:cut] + field_line + raw[cut:]
    return field_line + raw


# -- verdicts -------------------------------------------------------------------------------------

_SPF = {
    "pass": "PASS",
    "fail": "FAIL",
    "hardfail": "FAIL",
    "softfail": "GRAY",
    "neutral": "GRAY",
    "none": "GRAY",
    "policy": "GRAY",
    "temperror": "PROCESSING_FAILED",
    "permerror": "PROCESSING_FAILED",
}
_DKIM = {
    "pass": "PASS",
    "fail": "FAIL",
    "neutral": "GRAY",
    "none": "GRAY",
    "policy": "GRAY",
    "temperror": "PROCESSING_FAILED",
    "permerror": "PROCESSING_FAILED",
}
_DMARC = {
    "pass": "PASS",
    "fail": "FAIL",
    "none": "GRAY",
    "temperror": "PROCESSING_FAILED",
    "permerror": "PROCESSING_FAILED",
}
# Several results of one method. SPF and DMARC each have one answer per message, so a second one
# is not ours and a failure wins: no added result can turn a fail into a pass. Several DKIM
# signatures are normal and any one that verifies is a pass.
_RANK = ("FAIL", "PASS", "PROCESSING_FAILED", "GRAY")
_DKIM_RANK = ("PASS", "FAIL", "PROCESSING_FAILED", "GRAY")


def _combined(results: Iterable[MethodResult], table: dict[str, str], rank: Sequence[str] = _RANK) -> str:
    found = {table.get(r.result, "GRAY") for r in results}
    for status in rank:
        if status in found:
            return status
    return "DISABLED"


def verdicts_from_results(results: Sequence[MethodResult]) -> Verdicts:
    """SES-shaped verdicts (``PASS``, ``FAIL``, ``GRAY``, ``PROCESSING_FAILED``, ``DISABLED`` for a
    method not checked) of a list of results. SPF softfail and neutral are GRAY (no verdict); a
    DKIM pass of any signature is a pass; the DMARC policy is given only when DMARC failed, as SES
    gives it. A fail of SPF or DMARC outranks a pass of the same method."""
    spf = _combined((r for r in results if r.method == "spf"), _SPF)
    dkim = _combined((r for r in results if r.method == "dkim"), _DKIM, _DKIM_RANK)
    dmarc_results = [r for r in results if r.method == "dmarc"]
    dmarc = _combined(dmarc_results, _DMARC)
    policy = None
    if dmarc == "FAIL":
        policy = next((r.policy for r in dmarc_results if r.result == "fail" and r.policy), None)
    return Verdicts(spf=spf, dkim=dkim, dmarc=dmarc, dmarc_policy=policy)


def stamped_verdicts(raw: bytes, authserv_id: str) -> Verdicts:
    """The verdicts of the first Authentication-Results field of ``raw`` when it is ours (put there
    by :func:`stamp` after :func:`strip_trace_fields` removed every other); :data:`NO_VERDICT`
    otherwise."""
    first = split_message(raw).first("authentication-results")
    if first is None:
        return NO_VERDICT
    parsed = parse_authentication_results(first.value.decode("ascii", "replace"))
    if parsed is None or parsed.authserv_id != authserv_id.lower():
        return NO_VERDICT
    if not parsed.results:
        return NO_VERDICT
    return verdicts_from_results(parsed.results)
