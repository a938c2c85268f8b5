"""A user's own account: change the password, export everything, delete it.

Deleting an account stops every alias at once and removes the personal data, but keeps the alias
rows (``deleted_at`` set) so their addresses are never issued again and mail to them is dropped as
``dropped-unknown-alias``. The user row stays too, under a tombstone address, so the delivery log's
foreign keys stay valid and the old email address is free for a new sign-up. The user's own domains
are deleted, with their SES identities, so no mail for them is accepted any more.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from forwarder.accounts import sessions, tokens, two_factor
from forwarder.accounts.passwords import hash_password, password_problem, verify_password
from models import (
    DISPLAY_FORMATS,
    SENDER_MODES,
    UNSUBSCRIBE_ACTIONS,
    Alias,
    ApiToken,
    Contact,
    Delivery,
    Destination,
    SenderRule,
    User,
    WebAuthnCredential,
    alias_destinations,
    utcnow,
)
from web.services import contacts, domains
from web.services.context import ServiceContext
from web.services.errors import ServiceError

#: What the user types to confirm that the account should go.
CONFIRM_PHRASE = "delete my account"
EXPORT_VERSION = 1


def tombstone(user_id: int) -> str:
    return f"deleted-{user_id}@invalid"


def check_password(user: User, password: str) -> None:
    if not verify_password(user, password):
        raise ServiceError("wrong_password", "That is not your current password.", 403)


def change_password(
    db: Session, user: User, current: str, new: str, confirm: str | None = None, keep_session: int | None = None
) -> None:
    """Set a new password and end every session of ``user`` but ``keep_session`` (the one asking)."""
    check_password(user, current)
    problem = password_problem(new, confirm)
    if problem:
        raise ServiceError("weak_password", problem)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    sessions.end_all(db, user, keep=keep_session, commit=False)
    db.commit()


def reset_password(db: Session, user: User, new: str, confirm: str | None = None, *, revoke_tokens: bool) -> int:
    """Set a new password without the old one (a reset link, an administrator): every session of
    ``user`` ends, and with ``revoke_tokens`` every API token is revoked; the number revoked."""
    problem = password_problem(new, confirm)
    if problem:
        raise ServiceError("weak_password", problem)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    sessions.end_all(db, user, commit=False)
    revoked = tokens.revoke_all(db, user, commit=False) if revoke_tokens else 0
    db.commit()
    return revoked


def set_mail_preferences(
    db: Session, user: User, *, display_format: str, unsubscribe_action: str, sender_mode: str
) -> None:
    """How forwarded mail names its sender, what a one-click unsubscribe does, and who may write to
    every alias of the account (issue 14)."""
    for value, choices, what in (
        (display_format, DISPLAY_FORMATS, "The sender's name format"),
        (unsubscribe_action, UNSUBSCRIBE_ACTIONS, "The unsubscribe action"),
        (sender_mode, SENDER_MODES, "Who may write"),
    ):
        if value not in choices:
            raise ServiceError("invalid_choice", f"{what} is one of: {', '.join(choices)}.")
    user.display_format, user.unsubscribe_action, user.sender_mode = display_format, unsubscribe_action, sender_mode
    db.commit()


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _aliases(db: Session, user: User) -> list[Alias]:
    return list(db.scalars(select(Alias).where(Alias.user_id == user.id).order_by(Alias.id)))


def _alias(alias: Alias) -> dict[str, Any]:
    return {
        "id": alias.id,
        "address": alias.address,
        "enabled": alias.enabled,
        "label": alias.label,
        "note": alias.note,
        "created_at": _when(alias.created_at),
        "deleted_at": _when(alias.deleted_at),
        "expires_at": _when(alias.expires_at),
        "idle_days": alias.idle_days,
        "max_messages": alias.max_messages,
        "expired_action": alias.expired_action,
        "last_used_at": _when(alias.last_used_at),
        "message_count": alias.message_count,
        "forwarded_count": alias.forwarded_count,
        "blocked_count": alias.blocked_count,
        "destination_ids": sorted(d.id for d in alias.destinations),
    }


def _token(token: ApiToken) -> dict[str, Any]:
    """A token's metadata; its hash never leaves the database."""
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "created_at": _when(token.created_at),
        "expires_at": _when(token.expires_at),
        "last_used_at": _when(token.last_used_at),
        "revoked_at": _when(token.revoked_at),
    }


def _passkey(row: WebAuthnCredential) -> dict[str, Any]:
    """A passkey's metadata (its public key and credential id stay in the database)."""
    return {
        "id": row.id,
        "name": row.name,
        "created_at": _when(row.created_at),
        "last_used_at": _when(row.last_used_at),
        "transports": row.transports,
        "backed_up": row.backed_up,
    }


def _delivery(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": _when(row.created_at),
        "received_at": _when(row.received_at),
        "alias_id": row.alias_id,
        "recipient": row.recipient,
        "destination_id": row.destination_id,
        "outcome": row.outcome,
        "reason": row.reason,
        "mail_from": row.mail_from,
        "subject": row.subject,
        "bytes_in": row.bytes_in,
        "bytes_out": row.bytes_out,
        "attempts": row.attempts,
    }


def _contacts(ctx: ServiceContext, db: Session, aliases: list[Alias]) -> list[dict[str, Any]]:
    """The aliases' contacts, their real addresses and names opened (the sealer is only asked when
    there is something to open)."""
    by_id = {alias.id: alias for alias in aliases}
    rows = (
        list(db.scalars(select(Contact).where(Contact.alias_id.in_(list(by_id))).order_by(Contact.id))) if by_id else []
    )
    sealer = ctx.runtime.sealer if rows else None
    return [
        {
            "id": row.id,
            "alias_id": row.alias_id,
            "address": sealer.open(row.address_sealed),
            "name": sealer.open(row.name_sealed) if row.name_sealed else "",
            "reverse_address": f"{row.reverse_local}@{by_id[row.alias_id].address.rpartition('@')[2]}",
            "origin": row.origin,
            "blocked": row.blocked,
            "forwarded_count": row.forwarded_count,
            "replied_count": row.replied_count,
            "blocked_count": row.blocked_count,
            "last_seen_at": _when(row.last_seen_at),
            "created_at": _when(row.created_at),
        }
        for row in rows
        if sealer is not None
    ]


def _rules(db: Session, user: User) -> list[dict[str, Any]]:
    rows = db.scalars(select(SenderRule).where(SenderRule.user_id == user.id).order_by(SenderRule.id))
    return [
        {
            "id": r.id,
            "alias_id": r.alias_id,
            "action": r.action,
            "kind": r.kind,
            "value": r.value,
            "created_at": _when(r.created_at),
        }
        for r in rows
    ]


def export(ctx: ServiceContext, db: Session, user: User) -> dict[str, Any]:
    """Everything the service holds about ``user``, as JSON-ready values."""
    aliases = _aliases(db, user)
    alias_ids = [a.id for a in aliases]
    destinations = db.scalars(select(Destination).where(Destination.user_id == user.id).order_by(Destination.id))
    tokens = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    deliveries: Iterable[Delivery] = (
        db.scalars(select(Delivery).where(Delivery.alias_id.in_(alias_ids)).order_by(Delivery.created_at, Delivery.id))
        if alias_ids
        else []
    )
    return {
        "format": "othermail-export",
        "version": EXPORT_VERSION,
        "exported_at": utcnow().isoformat(),
        "profile": {
            "id": user.id,
            "email": user.email,
            "is_admin": user.is_admin,
            "created_at": _when(user.created_at),
            "email_verified_at": _when(user.email_verified_at),
            "password_changed_at": _when(user.password_changed_at),
        },
        "destinations": [
            {"id": d.id, "email": d.email, "verified_at": _when(d.verified_at), "created_at": _when(d.created_at)}
            for d in destinations
        ],
        "aliases": [_alias(a) for a in aliases],
        "api_tokens": [_token(t) for t in tokens],
        "passkeys": [
            _passkey(k) for k in db.scalars(select(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id))
        ],
        "domains": domains.export(db, user),
        "deliveries": [_delivery(row) for row in deliveries],
        "preferences": {
            "display_format": user.display_format,
            "unsubscribe_action": user.unsubscribe_action,
            "sender_mode": user.sender_mode,
        },
        "contacts": _contacts(ctx, db, aliases),
        "sender_rules": _rules(db, user),
    }


def delete_account(
    ctx: ServiceContext, db: Session, user: User, password: str | None = None, confirmation: str | None = None
) -> None:
    """Stop every alias, remove personal data, keep the alias addresses reserved.

    With ``password`` the current password is checked, with ``confirmation`` the typed phrase;
    an operator tool may pass neither.
    """
    if password is not None:
        check_password(user, password)
    if confirmation is not None and confirmation.strip().lower() != CONFIRM_PHRASE:
        raise ServiceError("not_confirmed", f"Type “{CONFIRM_PHRASE}” to confirm.")
    now = utcnow()
    alias_ids = select(Alias.id).where(Alias.user_id == user.id).scalar_subquery()
    db.execute(delete(alias_destinations).where(alias_destinations.c.alias_id.in_(alias_ids)))
    db.execute(
        update(Alias)
        .where(Alias.user_id == user.id, Alias.deleted_at.is_(None))
        .values(deleted_at=now)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(Alias)
        .where(Alias.user_id == user.id)
        .values(enabled=False, label=None, note=None)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        update(Delivery)
        .where(Delivery.alias_id.in_(alias_ids))
        .values(mail_from=None, subject=None)
        .execution_options(synchronize_session=False)
    )
    db.execute(delete(ApiToken).where(ApiToken.user_id == user.id).execution_options(synchronize_session=False))
    contacts.forget_two_way(db, alias_ids)
    db.execute(delete(SenderRule).where(SenderRule.user_id == user.id).execution_options(synchronize_session=False))
    two_factor.reset(db, user)  # the authenticator's secret, recovery codes, passkeys and sessions
    db.execute(delete(Destination).where(Destination.user_id == user.id).execution_options(synchronize_session=False))
    domains.forget_all(ctx, db, user)  # its own domains go (and their SES identities); their aliases are retired above
    user.email = tombstone(user.id)
    user.password_hash = None
    user.is_admin = False
    user.email_verified_at = None
    user.deleted_at = now
    user.password_changed_at = now
    db.commit()
