"""Shared fixtures: the shared data folder (skipped with a reason when absent) and a tiny random-init model config."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip when this machine has no copy."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lives beside the repository, never inside it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _quiet_random_weights_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
