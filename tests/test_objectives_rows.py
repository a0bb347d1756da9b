"""Packed rows of the objectives: purity in (seed, k), packing invariants."""

import ml_collections
import numpy as np
import pytest

from scaling import objectives as obj
from scaling import tokenizer as tok
from scaling.config import ConfigError, default_config
from scaling.objectives import keys

TOKENIZER = tok.ByteTokenizer()
SEQ_LEN = 96
NAMES = ("masked_lm", "prefix_lm", "span_corruption", "ul2", "fim")
FIELDS = ("inputs", "targets", "loss_mask", "segment_ids", "positions",
          "prefix_mask")


def _docs(n=40, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(0, 400, n)
  lengths[:3] = (0, 1, 1000)  # empty, 1 byte, several rows long
  return [rng.integers(0, 256, m).astype(np.int32) for m in lengths]


def _objective(name):
  cfg = ml_collections.ConfigDict(dict(default_config().objective))
  cfg.name = name
  return cfg


def _rows(name, seed=3, docs=None):
  return obj.example_rows(_objective(name), TOKENIZER,
                          _docs() if docs is None else docs, SEQ_LEN, seed)


def _check_row(source, k):
  r = source.row(k)
  assert {f: (r[f].shape, r[f].dtype) for f in FIELDS} == {
      f: ((SEQ_LEN,), np.dtype(d)) for f, d in zip(
          FIELDS, ("int32", "int32", "float32", "int32", "int32", "bool"))}
  seg = r["segment_ids"]
  real = seg > 0
  n_real = int(real.sum())
  assert real[:n_real].all()  # padding only at the end of a row
  assert (r["inputs"][~real] == tok.PAD).all()
  assert not r["loss_mask"][~real].any()
  # the segments are the plan's examples, each the pure per-example transform
  plan = source.row_plan(k)
  np.testing.assert_array_equal(np.unique(seg[real]),
                                np.arange(1, len(plan) + 1))
  for s, ex in enumerate(plan, start=1):
    where = np.flatnonzero(seg == s)
    assert where[0] == ex["offset"] and np.all(np.diff(where) == 1)
    one = source.spec(ex["tokens"], source.key, ex["example_index"])
    for f in ("inputs", "targets", "loss_mask", "positions", "prefix_mask"):
      np.testing.assert_array_equal(r[f][where], one[f], err_msg=f)
  # no loss-bearing shifted prediction can attend to its own target
  if source.spec.name != "masked_lm":
    n = SEQ_LEN
    q, kk = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    allow = (seg[q] == seg[kk]) & (seg[q] != 0) & (
        (kk <= q) | r["prefix_mask"][kk])
    for p in np.flatnonzero(r["loss_mask"]):
      assert seg[p + 1] == seg[p] and r["targets"][p] == r["inputs"][p + 1]
      assert not allow[p, p + 1:].any()
  return r


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_packed_examples(name):
  source = _rows(name)
  n0 = int(source.rows_per_epoch)
  filled = []
  for k in list(range(12)) + [n0 - 1, n0, n0 + 1]:  # across an epoch boundary
    filled.append((_check_row(source, k)["segment_ids"] > 0).mean())
  assert np.mean(filled) > 0.9


@pytest.mark.parametrize("name", NAMES)
def test_epoch_plan_covers_every_document_once(name):
  source = _rows(name)
  docs = _docs()
  plan = source._plan(1)  # pylint: disable=protected-access
  max_full = max(source.spec.max_raw(SEQ_LEN, m)
                 for m in range(source.spec.n_modes))
  assert plan.raw_len.max() == max_full  # long documents give full examples
  for d, doc in enumerate(docs):
    mine = plan.doc == d
    starts, lens = plan.start[mine], plan.raw_len[mine]
    assert np.array_equal(starts, np.cumsum(lens) - lens)  # contiguous from 0
    # all of doc + EOS, but a tail shorter than one example (<= its EOS)
    assert 0 <= len(doc) + 1 - lens.sum() < source.spec.min_raw
  epoch0 = source._plan(0)  # pylint: disable=protected-access
  assert plan.first_example == epoch0.doc.size  # indices run on


def test_row_k_is_a_pure_function_of_seed_and_k():
  for name in ("ul2", "span_corruption", "fim"):
    walked = _rows(name)
    n0 = int(walked.rows_per_epoch)
    late = [2 * n0 + 5, n0 + 3]
    for k in range(0, late[0] + 1, 7):  # walk the job in order
      walked.row(k)
    fresh = _rows(name)  # resumed: asks for the late rows first
    for k in late + [4]:
      a, b = walked.row(k), fresh.row(k)
      for f in FIELDS:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f"{name} row {k}")
    other_seed = _rows(name, seed=4).row(4)
    assert not np.array_equal(other_seed["inputs"], fresh.row(4)["inputs"])


def test_masked_lm_rows_are_concatenate_then_split():
  docs = _docs()
  source = _rows("masked_lm", docs=docs)
  stream = sum(len(d) + 1 for d in docs)
  assert source.rows_per_epoch == -(-stream // SEQ_LEN)
  assert source.epoch_rows(1) == source.rows_per_epoch


def test_global_example_index_runs_over_the_job():
  source = _rows("ul2")
  n0 = int(source.rows_per_epoch)
  last = source.row_plan(n0 - 1)[-1]["example_index"]
  assert source.row_plan(n0)[0]["example_index"] == last + 1
  key = keys.fold_in(keys.as_key(3), 0)  # data seed 3, objective.seed 0
  np.testing.assert_array_equal(source.key, key)


def test_unsupported_and_unknown_objectives():
  with pytest.raises(ValueError, match="CausalRows"):
    _rows("causal_lm")
  with pytest.raises(ConfigError):
    _rows("electra")
  with pytest.raises(ValueError, match="no document"):
    _rows("prefix_lm", docs=[np.zeros(0, np.int32)])
