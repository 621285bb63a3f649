"""Shared test settings: Qt offscreen, a hypothesis profile that suits a 2-core CI machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def corpus_path():
    """Path of a music21 corpus piece by its corpus name (e.g. 'bach/bwv66.6')."""
    from music21 import corpus

    def get(name: str) -> Path:
        return Path(corpus.getWork(name))

    return get
