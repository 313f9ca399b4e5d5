"""Fixtures of the energy tests."""

from __future__ import annotations

import pytest
from energy_fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
