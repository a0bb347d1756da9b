"""Noise floor from replicate runs and data repetition (analysis.replicates)."""

import math

import numpy as np
import pytest

from analysis import replicates


def test_pooled_sd_of_replicates_equals_a_hand_computation():
  n = [1e4, 1e4, 1e4, 2e4, 2e4, 5e4]
  d = [1e6, 1e6, 1e6, 1e6, 1e6, 1e6]
  loss = [2.0, 2.1, 2.3, 1.8, 1.9, 1.7]
  out = replicates.noise_floor(n, d, loss)
  # groups (1e4,1e6): 2.0, 2.1, 2.3 and (2e4,1e6): 1.8, 1.9; 5e4 alone.
  m = (2.0 + 2.1 + 2.3) / 3
  ss = (2.0 - m) ** 2 + (2.1 - m) ** 2 + (2.3 - m) ** 2 + 2 * 0.05 ** 2
  assert out["groups"] == 2 and out["runs"] == 5 and out["dof"] == 3
  assert out["sd"] == pytest.approx(math.sqrt(ss / 3), rel=1e-6)
  lo, hi = out["sd_log_ci"]
  assert lo < out["sd_log"] < hi


def test_no_replicates_and_no_unique_tokens_say_so():
  assert replicates.noise_floor([1, 2, 3], [4, 5, 6], [1.0, 1.1, 1.2]) is None
  assert replicates.repetition([1e6], None) is None
  text = " ".join(replicates.lines(None, None, 0.02, 0.95))
  assert "not measured" in text


def test_repetition_counts_runs_past_one_epoch():
  rep = replicates.repetition(np.array([1e6, 3e6, 5e6]), np.array([4e6] * 3))
  assert rep == dict(max_epochs=1.25, repeated=1, runs=3)
  text = " ".join(replicates.lines(
      replicates.noise_floor([1, 1], [2, 2], [1.0, 1.02]), rep, 0.2, 0.95))
  assert "1 of 3 runs" in text and "well above the seed noise" in text
