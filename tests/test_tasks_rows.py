"""Text-to-text rows: layout, loss on the target only, visibility, scorer."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from scaling import tokenizer as tok
from scaling.model import attention_mask
from scaling.tasks import rows as rows_lib
from scaling.tasks.task import Example

BOS, EOS, PAD = tok.BOS, tok.EOS, tok.PAD


def _row(rows, i):
  return {k: v[i] for k, v in rows.batch.items()}


def test_one_example_row_layout_by_hand():
  rows = rows_lib.task_rows([("ab", "xyz")], seq_len=10)
  r = _row(rows, 0)
  assert rows.batch["inputs"].shape == (1, 10)
  np.testing.assert_array_equal(
      r["inputs"], [97, 98, BOS, 120, 121, 122, EOS, PAD, PAD, PAD])
  np.testing.assert_array_equal(
      r["targets"], [98, BOS, 120, 121, 122, EOS, PAD, PAD, PAD, PAD])
  # Loss: SEP -> x, x -> y, y -> z, z -> EOS; nothing of the input.
  np.testing.assert_array_equal(r["loss_mask"], [0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(r["segment_ids"], [1] * 7 + [0] * 3)
  np.testing.assert_array_equal(r["positions"], [0, 1, 2, 3, 4, 5, 6, 0, 0, 0])
  np.testing.assert_array_equal(r["prefix_mask"], [1, 1, 1] + [0] * 7)
  causal = _row(rows_lib.task_rows([("ab", "xyz")], 10, attention="causal"), 0)
  assert not causal["prefix_mask"].any()
  np.testing.assert_array_equal(causal["loss_mask"], r["loss_mask"])
  assert r["inputs"].dtype == np.int32 and r["loss_mask"].dtype == np.float32


def test_loss_bearing_targets_are_exactly_target_bytes_then_eos():
  rng = np.random.default_rng(0)
  examples = []
  for i in range(50):
    x = bytes(rng.integers(32, 127, rng.integers(1, 40)).tolist()).decode()
    y = bytes(rng.integers(32, 127, rng.integers(0, 20)).tolist()).decode()
    examples.append(Example(id=str(i), input=x, target=y + "é"))
  for pack in (False, True):
    rows = rows_lib.task_rows(examples, seq_len=64, pack=pack)
    assert rows.batch["inputs"].shape[1] == 64
    for e, i, s in zip(examples, rows.row, rows.segment):
      r = _row(rows, i)
      sel = (r["loss_mask"] > 0) & (r["segment_ids"] == s)
      assert r["targets"][sel].tolist() == list(e.target.encode()) + [EOS]
      seg = r["segment_ids"] == s
      assert r["inputs"][seg][:len(e.input)].tolist() == list(e.input.encode())
      assert r["positions"][seg].tolist() == list(range(seg.sum()))
  packed = rows_lib.task_rows(examples, seq_len=64, pack=True)
  assert packed.batch["inputs"].shape[0] < len(examples)
  assert packed.segment.max() > 1


def _mask(row):
  return np.asarray(attention_mask(jnp.asarray(row["segment_ids"])[None],
                                   jnp.asarray(row["prefix_mask"])[None]
                                    ).allowed_Bx1xLxL)[0, 0]


def test_prefix_visibility_under_the_models_mask():
  # Two packed examples: "abc" -> "de" then "f" -> "g".
  rows = rows_lib.task_rows([("abc", "de"), ("f", "g")], seq_len=16,
                            pack=True)
  r = _row(rows, 0)
  m = _mask(r)  # [q, k]
  n1 = 3 + 1 + 2 + 1  # first example's tokens
  # Input positions see the whole input and the separator (bidirectional).
  assert m[0, :4].all()
  # ... but no target token: the answer never leaks into the input's view.
  assert not m[0, 4:n1].any() and not m[3, 4:n1].any()
  # Target positions are causal: position 4 ('d') sees 0..4, not 5.
  assert m[4, :5].all() and not m[4, 5]
  # Segments are isolated both ways, and padding sees nothing.
  assert not m[:n1, n1:].any() and not m[n1:, :n1].any()
  assert not m[n1 + 4:].any()
  # Causal attention: the first input token sees only itself.
  causal = rows_lib.task_rows([("abc", "de")], 16, attention="causal")
  c = _mask(_row(causal, 0))
  assert c[0, 0] and not c[0, 1:].any()


def test_answer_sums_and_gold_bits_per_byte_by_hand():
  rows = rows_lib.task_rows([("ab", "xyz"), ("q", "rs")], seq_len=16, pack=True)
  r = _row(rows, 0)
  vocab = 384
  logprobs = np.full((16, vocab), -50.0)
  for t in range(16):  # log p(target at t) = -(t + 1) / 10
    logprobs[t, r["targets"][t]] = -(t + 1) / 10
  nll, n_bytes, n_tokens = rows_lib.answer_sums(r, logprobs)
  # Example 1 (7 tokens): loss at positions 2..5. Example 2 starts at 7
  # ("q", SEP, "r", "s", EOS): loss at positions 8..10.
  assert nll == pytest.approx([0.3 + 0.4 + 0.5 + 0.6, 0.9 + 1.0 + 1.1])
  np.testing.assert_array_equal(n_bytes, [3, 2])
  np.testing.assert_array_equal(n_tokens, [4, 3])
  taken = logprobs[np.arange(16), r["targets"]]
  np.testing.assert_allclose(rows_lib.answer_sums(r, taken)[0], nll)
  bpb, se = rows_lib.gold_bits_per_byte(nll, n_bytes)
  assert bpb == pytest.approx((1.8 + 3.0) / (math.log(2) * 5))
  # Negative control: the mean of per-example ratios is a different number.
  assert bpb != pytest.approx(np.mean(nll / n_bytes) / math.log(2))
  assert se > 0


def test_rows_refuse_what_does_not_fit_and_sentinels():
  with pytest.raises(ValueError, match=r"example 'long' needs 12 tokens .* "
                     r"seq_len is 11"):
    rows_lib.task_rows([Example(id="long", input="abcdefgh", target="xy")],
                       seq_len=11)
  assert rows_lib.task_rows([("abcdefgh", "xy")], seq_len=12).batch[
      "inputs"].shape == (1, 12)
  with pytest.raises(ValueError, match="separator"):
    rows_lib.task_rows([("a", "b")], 8,
                       separator=tok.ByteTokenizer().sentinel(0))
  with pytest.raises(ValueError, match="attention"):
    rows_lib.task_rows([("a", "b")], 8, attention="bidirectional")
