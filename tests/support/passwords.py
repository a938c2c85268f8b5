"""Argon2 parameters for the test suite only.

Production hashes cost 64 MiB and three passes (web.security.PRODUCTION_HASHER); the suite signs
up and in a few thousand times, so it hashes with the smallest parameters Argon2id allows. The
hash format is unchanged, so every code path (verify, rehash check, dummy hash) runs as in
production; tests/web/test_password_hashing.py keeps the production defaults strong.
"""

from __future__ import annotations

from argon2 import PasswordHasher

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
