"""Argon2 parameters: strong in production, cheap in this test suite only (issue 13)."""

from __future__ import annotations

from argon2 import PasswordHasher, extract_parameters

from web import security

# RFC 9106's second recommended profile (argon2-cffi's defaults): t=3, 64 MiB, p=4.
RFC_9106_LOW_MEMORY = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}


def test_production_hashes_use_at_least_rfc_9106s_low_memory_profile() -> None:
    hashed = security.PRODUCTION_HASHER.hash("correct horse battery")
    parameters = extract_parameters(hashed)
    assert hashed.startswith("$argon2id$")
    for name, minimum in RFC_9106_LOW_MEMORY.items():
        assert getattr(parameters, name) >= minimum, name


def test_the_suite_hashes_with_cheap_parameters_and_the_hash_still_verifies() -> None:
    hashed = security.hash_password("correct horse battery")
    parameters = extract_parameters(hashed)
    assert hashed.startswith("$argon2id$")
    assert parameters.memory_cost < RFC_9106_LOW_MEMORY["memory_cost"]
    assert parameters.time_cost == 1
    # verification takes the parameters from the hash: production code accepts it as is
    assert PasswordHasher().verify(hashed, "correct horse battery")


def test_use_password_hasher_swaps_the_hasher_and_the_dummy_hash_follows() -> None:
    other = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    previous = security.use_password_hasher(other)
    try:
        assert extract_parameters(security.hash_password("x" * 10)).time_cost == 2
        assert extract_parameters(security._dummy_hash()).time_cost == 2
    finally:
        security.use_password_hasher(previous)
    assert extract_parameters(security._dummy_hash()).time_cost == 1
