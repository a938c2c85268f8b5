"""What a test does when a system tool it drives is missing."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip, naming what to install; under CI (``.ci/run`` installs every such tool), fail: CI
    cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set", pytrace=False)
    pytest.skip(reason)
