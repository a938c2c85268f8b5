"""Reading an address list with loops only: no input reaches a recursion limit.

The standard library's lenient reader (``email.utils.getaddresses``, ``email._parseaddr``) calls
itself once per nested comment and once per nested group, so a From of 5,000 nested parentheses
raises ``RecursionError``; the strict one (``email.headerregistry``) recurses on long runs of
encoded words too. This module reads the same grammar the way ``email._parseaddr`` reads it (the
same pairs for every input that module can read, which a test checks), with counters where that
module recurses:

- a comment is read in one loop that counts its depth; a nesting deeper than ``MAX_NESTING``
  is read to its end all the same but marks the list ``too_deep``;
- a group (``name: a@x, b@y;``) opens a level of a counter instead of a call; groups cannot
  nest in RFC 5322, and more than ``MAX_NESTING`` open ones mark the list ``too_deep`` too;
- text longer than ``MAX_TEXT`` characters is not read at all (``too_big``).

A list marked ``too_deep`` or ``too_big`` has no form that every reader downstream (SES, mail
clients) can be trusted to parse, so the strict reading in ``addresses`` refuses it and rule 10 of
``headers`` keeps it as text. Each step moves forward at least one character, so the cost is
linear in the length of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Comment or group nesting deeper than this has no use in real mail.
MAX_NESTING = 32
#: An address field longer than this (about 30,000 addresses) is not read.
MAX_TEXT = 1_000_000

_SPECIALS = '()<>@,:;."[]'
_LWS = " \t"
_FWS = " \t\r\n"
_ATOM_ENDS = _SPECIALS + _FWS
_PHRASE_ENDS = _ATOM_ENDS.replace(".", "")  # RFC 5322 obs-phrase allows dots in a phrase
_ATOM = re.compile(r'[^()<>@,:;."\[\] \t\r\n]+')
_PHRASE_ATOM = re.compile(r'[^()<>@,:;"\[\] \t\r\n]+')


@dataclass(slots=True)
class AddressPairs:
    """(display name, address) pairs as ``email.utils.getaddresses`` gives them, and why not all."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    too_deep: bool = False
    too_big: bool = False

    @property
    def complete(self) -> bool:
        return not (self.too_deep or self.too_big)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class _Reader:
    __slots__ = ("text", "pos", "end", "comments", "too_deep")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)
        self.comments: list[str] = []
        self.too_deep = False

    def skip_space(self) -> str:
        """Skip white space, collecting comments; the spaces and tabs skipped."""
        spaces: list[str] = []
        text, end = self.text, self.end
        while self.pos < end:
            ch = text[self.pos]
            if ch in _FWS:
                if ch in _LWS:
                    spaces.append(ch)
                self.pos += 1
            elif ch == "(":
                self.comments.append(self.comment())
            else:
                break
        return "".join(spaces)

    def comment(self) -> str:
        """A comment at ``pos``, nested comments flattened into its text (one loop, a counter)."""
        text, end = self.text, self.end
        if text[self.pos] != "(":
            return ""
        self.pos += 1
        depth = 1
        out: list[str] = []
        escaped = False
        while self.pos < end:
            ch = text[self.pos]
            self.pos += 1
            if escaped:
                out.append(ch)
                escaped = False
            elif ch in ")\r":
                depth -= 1
                if depth == 0:
                    break
            elif ch == "(":
                depth += 1
                if depth > MAX_NESTING:
                    self.too_deep = True
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)

    def delimited(self, begin: str, ends: str) -> str:
        """A quoted string or domain literal at ``pos`` (no comments inside), unescaped."""
        text, end = self.text, self.end
        if text[self.pos] != begin:
            return ""
        self.pos += 1
        out: list[str] = []
        escaped = False
        while self.pos < end:
            ch = text[self.pos]
            self.pos += 1
            if escaped:
                out.append(ch)
                escaped = False
            elif ch in ends:
                break
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)

    def atom(self, pattern: re.Pattern[str] = _ATOM) -> str:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return ""
        self.pos = match.end()
        return match.group()

    def phrase(self) -> list[str]:
        words: list[str] = []
        text, end = self.text, self.end
        while self.pos < end:
            ch = text[self.pos]
            if ch in _FWS:
                self.pos += 1
            elif ch == '"':
                words.append(self.delimited('"', '"\r'))
            elif ch == "(":
                self.comments.append(self.comment())
            elif ch in _PHRASE_ENDS:
                break
            else:
                words.append(self.atom(_PHRASE_ATOM))
        return words

    def addr_spec(self) -> str:
        parts: list[str] = []
        text, end = self.text, self.end
        self.skip_space()
        while self.pos < end:
            keep_space = True
            ch = text[self.pos]
            if ch == ".":
                if parts and not parts[-1].strip():
                    parts.pop()
                parts.append(".")
                self.pos += 1
                keep_space = False
            elif ch == '"':
                parts.append('"%s"' % _quote(self.delimited('"', '"\r')))
            elif ch in _ATOM_ENDS:
                if parts and not parts[-1].strip():
                    parts.pop()
                break
            else:
                parts.append(self.atom())
            space = self.skip_space()
            if keep_space and space:
                parts.append(space)
        if self.pos >= end or text[self.pos] != "@":
            return "".join(parts)
        parts.append("@")
        self.pos += 1
        self.skip_space()
        domain = self.domain()
        return "".join(parts) + domain if domain else ""

    def domain(self) -> str:
        parts: list[str] = []
        text, end = self.text, self.end
        while self.pos < end:
            ch = text[self.pos]
            if ch in _LWS:
                self.pos += 1
            elif ch == "(":
                self.comments.append(self.comment())
            elif ch == "[":
                parts.append("[%s]" % self.delimited("[", "]\r"))
            elif ch == ".":
                self.pos += 1
                parts.append(".")
            elif ch == "@":
                return ""  # bpo-34155: never read "a@evil.example@good.example" as an address
            elif ch in _ATOM_ENDS:
                break
            else:
                parts.append(self.atom())
        return "".join(parts)

    def route_addr(self) -> str:
        """``<[@route,@route:]addr-spec>`` at ``pos``: the addr-spec, the route skipped."""
        text, end = self.text, self.end
        self.pos += 1
        self.skip_space()
        address = ""
        expect_route = False
        while self.pos < end:
            ch = text[self.pos]
            if expect_route:
                self.domain()
                expect_route = False
            elif ch == ">":
                self.pos += 1
                break
            elif ch == "@":
                self.pos += 1
                expect_route = True
            elif ch == ":":
                self.pos += 1
            else:
                address = self.addr_spec()
                self.pos += 1
                break
            self.skip_space()
        return address

    def address(self) -> list[tuple[str, str]] | None:
        """The next mailbox (a list of at most one pair), or None where a group opens."""
        text, end = self.text, self.end
        self.comments = []
        self.skip_space()
        start = self.pos
        comments = self.comments  # the same list: the restart below keeps what was collected
        words = self.phrase()
        self.skip_space()
        found: list[tuple[str, str]] = []
        if self.pos >= end:
            if words:
                found = [(" ".join(self.comments), words[0])]
        elif text[self.pos] in ".@":
            # an addr-spec after all: read it again from the start
            self.pos = start
            self.comments = comments
            spec = self.addr_spec()
            found = [(" ".join(self.comments), spec)]
        elif text[self.pos] == ":":
            self.pos += 1
            return None
        elif text[self.pos] == "<":
            spec = self.route_addr()
            name = " ".join(words)
            if self.comments:
                name = f"{name} ({' '.join(self.comments)})"
            found = [(name, spec)]
        elif words:
            found = [(" ".join(self.comments), words[0])]
        elif text[self.pos] in _SPECIALS:
            self.pos += 1
        self.skip_separator()
        return found

    def skip_separator(self) -> None:
        self.skip_space()
        if self.pos < self.end and self.text[self.pos] == ",":
            self.pos += 1

    def address_list(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        depth = 0
        group_start = 0  # where the pairs of the outermost open group start
        while self.pos < self.end:
            if depth:
                self.skip_space()
                if self.pos >= self.end:
                    break
                if self.text[self.pos] == ";":
                    self.pos += 1
                    depth -= 1
                    self.skip_separator()
                    if depth == 0 and len(pairs) == group_start:
                        pairs.append(("", ""))  # an empty group, as email.utils reads it
                    continue
            found = self.address()
            if found is None:
                if depth == 0:
                    group_start = len(pairs)
                depth += 1
                if depth > MAX_NESTING:
                    self.too_deep = True
                continue
            if found:
                pairs.extend(found)
            elif depth == 0:
                pairs.append(("", ""))
        if depth and len(pairs) == group_start:
            pairs.append(("", ""))
        return pairs


def read_address_pairs(text: str) -> AddressPairs:
    """The (name, address) pairs of an address list, read without recursion (see the module doc)."""
    if len(text) > MAX_TEXT:
        return AddressPairs(too_big=True)
    reader = _Reader(text)
    pairs = reader.address_list()
    return AddressPairs(pairs, too_deep=reader.too_deep)
