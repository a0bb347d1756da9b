"""Training/eval batches: purity in (seed, step), process slicing, globals."""

import types

import jax
import ml_collections
import numpy as np
import pytest

from scaling import tokenizer as tok
from scaling import validation
from scaling.config import ConfigError
from scaling.config import default_config
from scaling.data import BATCH_KEYS
from scaling.data import pipeline
from scaling.data.sources import Corpus

TOKENIZER = tok.ByteTokenizer()


def _corpus(n_docs=60, seed=0):
  rng = np.random.default_rng(seed)
  docs = [bytes(rng.integers(32, 127, size=n).astype(np.uint8))
          for n in rng.integers(1, 300, size=n_docs)]
  return Corpus(name="test", description="", train=docs[:-5], val=docs[-5:],
                train_names=[], val_names=[], corpus_hash="")


def _stream(corpus, **kw):
  args = dict(seq_len=32, batch_size=8, seed=1)
  args.update(kw)
  return pipeline.TrainStream(corpus, TOKENIZER, **args)


def test_batch_is_rows_k_b_to_k_plus_1_b():
  s = _stream(_corpus())
  batch = s.local_batch(5)
  assert set(batch) == set(BATCH_KEYS)
  for key, value in batch.items():
    assert value.shape == (8, 32)
    want = np.stack([s.source.row(5 * 8 + i)[key] for i in range(8)])
    np.testing.assert_array_equal(value, want)


def test_batch_pure_in_seed_and_step_and_process_count():
  corpus = _corpus()
  whole = _stream(corpus)
  steps = [0, 3, 17, 250]
  expected = {k: whole.local_batch(k) for k in steps}
  for count in (2, 4, 8):
    parts = [_stream(corpus, process_index=p, process_count=count)
             for p in range(count)]
    for k in reversed(steps):
      joined = {key: np.concatenate([q.local_batch(k)[key] for q in parts])
                for key in BATCH_KEYS}
      for key in BATCH_KEYS:
        np.testing.assert_array_equal(joined[key], expected[k][key])
  other = _stream(corpus, seed=2)
  assert (other.local_batch(3)["inputs"] != expected[3]["inputs"]).any()


def test_epochs_and_unique_tokens_with_max_tokens():
  corpus = _corpus()
  full = _stream(corpus)
  assert full.unique_tokens == sum(len(d) + 1 for d in corpus.train)
  capped = _stream(corpus, max_tokens=1000)
  assert capped.unique_tokens == 1000
  # 10 steps x 8 rows x 33 tokens = 2640 stream tokens = 2.64 epochs.
  assert capped.epochs_at(10) == pytest.approx(2.64)
  config = default_config()
  config.data.max_tokens = 0
  with pytest.raises(ConfigError, match="data.max_tokens"):
    validation.validate(config)
  config = default_config()
  config.batch_size = 8
  config.eval.batch_size = 6
  with pytest.raises(ConfigError, match="config.batch_size"):
    validation.validate(config, n_devices=3)
  with pytest.raises(ValueError, match="equal block"):
    _stream(corpus, process_count=3)


def test_non_causal_objective_rows_come_from_objectives(monkeypatch):
  calls = {}

  class FakeRows:
    rows_per_epoch = 50

    def row(self, k):
      r = pipeline.padding_row(32)
      r["inputs"] = np.full(32, k % 256, dtype=np.int32)
      return r

  def example_rows(cfg, tokenizer, docs, seq_len, seed, *, truncated=False):
    calls.update(name=cfg.name, n_tokens=sum(len(d) + 1 for d in docs),
                 seq_len=seq_len, seed=seed, truncated=truncated)
    return FakeRows()

  fake = types.ModuleType("scaling.objectives")
  fake.example_rows = example_rows
  monkeypatch.setattr(pipeline, "objectives", fake)
  cfg = ml_collections.ConfigDict(dict(name="span_corruption"))
  s = _stream(_corpus(), objective_cfg=cfg, max_tokens=1000,
              process_index=1, process_count=2, row_order="stream")
  assert calls == dict(name="span_corruption", n_tokens=1001, seq_len=32,
                       seed=1, truncated=True)  # capped docs; the truncated one has no EOS
  assert s.unique_tokens == 1000
  np.testing.assert_array_equal(s.local_batch(2)["inputs"][:, 0],
                                [20, 21, 22, 23])
  assert s.epochs_at(25) == pytest.approx(4.0)


def test_shuffled_rows_permute_each_window_and_spread_a_batch():
  corpus = _corpus(n_docs=400)
  shuffled = _stream(corpus)  # the default: data.row_order=shuffled
  stream = _stream(corpus, row_order="stream")
  w = shuffled.source.window
  assert w == int(shuffled.source.rows_per_epoch) > 100
  j = np.arange(3 * w)
  read = np.array([shuffled.source.source_row(int(k)) for k in j])
  # A bijection that keeps each window: every stream row read once per pass.
  np.testing.assert_array_equal(np.sort(read), j)
  np.testing.assert_array_equal(read // w, j // w)
  assert not np.array_equal(read[:w], read[w:2 * w] - w)  # windows differ
  batch = shuffled.local_batch(3)
  for key in BATCH_KEYS:
    np.testing.assert_array_equal(
        batch[key], np.stack([stream.source.row(int(read[24 + i]))[key]
                              for i in range(8)]))
  # A batch's rows come from all over the window; in stream order they are
  # 8 consecutive rows (the negative control).
  assert np.ptp(read[24:32]) > w // 4
  in_order = [stream.source.row(24 + i)["inputs"] for i in range(8)]
  np.testing.assert_array_equal(stream.local_batch(3)["inputs"], in_order)
  other_seed = _stream(corpus, seed=2).source
  assert [other_seed.source_row(k) for k in range(8)] != list(read[:8])
  with pytest.raises(ValueError, match="row_order"):
    _stream(corpus, row_order="sorted")
  config = default_config()
  config.data.row_order = "sorted"
  with pytest.raises(ConfigError, match="data.row_order"):
    validation.validate(config)


def test_eval_batches_cover_the_split_once_and_are_fixed():
  corpus = _corpus()
  batches = pipeline.eval_batches(corpus.val, TOKENIZER, 16, 4, -1)
  again = pipeline.eval_batches(corpus.val, TOKENIZER, 16, 4, -1)
  for a, b in zip(batches, again, strict=True):
    for key in BATCH_KEYS:
      np.testing.assert_array_equal(a[key], b[key])
  rows = [{k: b[k][i] for k in b} for b in batches for i in range(4)]
  stream = np.concatenate([np.append(r["inputs"], r["targets"][-1])
                           for r in rows])
  stream = stream[stream != tok.PAD]
  assert len(stream) == sum(len(d) + 1 for d in corpus.val)
  docs = bytes(stream[stream != tok.EOS].astype(np.uint8))
  assert sorted(docs) == sorted(b"".join(corpus.val))
  # Loss: every within-document transition of the stream (N - n_docs),
  # except those that fall between two rows (a row's last token is not EOS).
  cuts = np.arange(17, len(stream), 17)
  lost = int((stream[cuts - 1] != tok.EOS).sum())
  loss_tokens = sum(b["loss_mask"].sum() for b in batches)
  assert loss_tokens == len(stream) - len(corpus.val) - lost
  assert len(pipeline.eval_batches(corpus.val, TOKENIZER, 16, 4, 2)) == 2


def test_unigram_entropy_golden():
  assert pipeline.unigram_entropy_bits_per_byte([bytes(range(256))]) == 8.0
  assert pipeline.unigram_entropy_bits_per_byte([b"aaaa"]) == 0.0
  assert pipeline.unigram_entropy_bits_per_byte([b"ab", b"aabb", b"b"]) == (
      pytest.approx(-(3 / 7) * np.log2(3 / 7) - (4 / 7) * np.log2(4 / 7)))


