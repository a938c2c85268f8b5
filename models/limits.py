"""How long the text people give may be, written once: the columns are this long, and the web
forms, the API and the CLI refuse (or, for free text on a page, cut) anything longer."""

from __future__ import annotations

#: RFC 5321 limits a forward path to 256 octets including the angle brackets.
EMAIL_MAX_LENGTH = 254
#: RFC 5321 section 4.5.3.1.1: a local part is at most 64 octets.
LOCAL_PART_MAX_LENGTH = 64
#: A domain name in its text form, without the final dot.
DOMAIN_MAX_LENGTH = 253
#: An alias's label ("newsletter from shop X") and its free-text note.
LABEL_MAX_LENGTH = 100
NOTE_MAX_LENGTH = 2000
#: The name its owner gives an API token.
TOKEN_NAME_MAX_LENGTH = 100
#: The name an alias shows on replies and write-first mail (issue 14).
DISPLAY_NAME_MAX_LENGTH = 100
#: A contact's display name is cut to this many UTF-8 bytes before it is sealed.
CONTACT_NAME_MAX_BYTES = 256

#: Untrusted free text in the delivery log (a message's Subject, its raw object's key, why it was
#: not forwarded): :func:`clip` fits it into these instead of failing the insert.
SUBJECT_MAX_LENGTH = 255
RAW_KEY_MAX_LENGTH = 512
REASON_MAX_LENGTH = 500


def clip(value: str | None, limit: int) -> str | None:
    """Fit untrusted free text into its column instead of failing the insert.

    NUL characters are removed too: PostgreSQL rejects them in text columns.
    """
    if value is None:
        return None
    return value.replace("\x00", "")[:limit]
