"""forwarder/accounts/two_factor.py on every backend (issue 16): a TOTP code and a recovery code are
each accepted once, even by two sessions that both read the user before either wrote (the check is
the database's compare-and-set, not the loaded object)."""

from __future__ import annotations

import secrets

import pyotp
from sqlalchemy import select

from forwarder.accounts import two_factor
from forwarder.adapters.sealing import Sealer
from models import RecoveryCode, User, make_engine, make_session_factory

NOW = 1_800_000_015.0


def test_a_code_and_a_recovery_code_are_accepted_once_by_two_racing_sessions(migrated_url: str) -> None:
    sealer = Sealer([("k1", secrets.token_bytes(32))])
    engine = make_engine(migrated_url)
    try:
        factory = make_session_factory(engine)
        with factory() as db:
            user = User(email="ann@example.org")
            db.add(user)
            db.commit()
            secret = two_factor.start_enrolment(db, user, sealer)
            step = int(NOW // 30)
            codes = two_factor.confirm_enrolment(db, user, sealer, pyotp.TOTP(secret).generate_otp(step - 1), NOW)
            assert user.totp_last_step == step - 1 and len(codes) == 10
            user_id = user.id
        code = pyotp.TOTP(secret).generate_otp(step)
        with factory() as first, factory() as second:
            mine, theirs = first.get(User, user_id), second.get(User, user_id)
            assert mine is not None and theirs is not None  # both loaded before either accepts
            accepted = [two_factor.verify_totp(db, u, sealer, code, NOW) for db, u in ((first, mine), (second, theirs))]
            assert accepted == [True, False]
            assert two_factor.verify_totp(first, mine, sealer, pyotp.TOTP(secret).generate_otp(step - 1), NOW) is False
            used = [two_factor.use_recovery_code(db, u, codes[0]) for db, u in ((first, mine), (second, theirs))]
            assert used == [True, False]
            assert two_factor.recovery_codes_left(first, mine) == 9

            ended = two_factor.reset(first, mine)
            first.commit()
            assert ended == 0
        with factory() as db:
            row = db.get(User, user_id)
            assert row is not None and (row.totp_secret, row.totp_enabled_at, row.totp_last_step) == (None, None, None)
            assert db.scalars(select(RecoveryCode)).all() == []
    finally:
        engine.dispose()
