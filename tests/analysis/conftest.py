"""Session fixtures for the analysis tests (helpers: analysis_synth.py)."""

from __future__ import annotations

import pytest

from analysis_synth import EPOCH_CSV, synthetic_isoflop


@pytest.fixture(scope="session")
def epoch_points():
  """Epoch AI's 240 points: (N, D = C/(6N), loss), 5 highest losses dropped."""
  from analysis import load
  t = load.load_table(str(EPOCH_CSV), drop_highest_loss=5)
  return t.runs


@pytest.fixture(scope="session")
def synthetic_runs():
  return synthetic_isoflop()


@pytest.fixture(scope="session")
def epoch_fit(epoch_points):
  from analysis import chinchilla
  r = epoch_points
  return chinchilla.fit_approach3(r["N"], r["D"], r["loss"])
