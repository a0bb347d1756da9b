"""Objectives on the real model: what a prediction may see, and data purity.

Issue 5, Done-when 2: for every objective, on packed training rows from the
real data pipeline and the real (tiny) model, a token's prediction is
unchanged when a token it must not see changes: the causal future, other
packed documents, the hidden span content. What a position may see is
derived here from the objective's meaning (loss layout, sentinels, mode
tokens), not from the row's ``prefix_mask``, so the test checks the
objectives' masks and the model's attention rule together.
Done-when 3: the same seed and step give the same corrupted batch after the
data stream is rebuilt (resume) and on a different process split.
Also the shared scoring view (``scaling.evaluation``) against a direct
computation.
"""

import functools
import math

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from scaling import evaluation
from scaling import model as model_lib
from scaling import objectives as obj
from scaling import program as program_lib
from scaling import sharding as sharding_lib
from scaling import tokenizer as tok
from scaling.config import default_config
from scaling.data import BATCH_KEYS, packing, pipeline
from scaling.data.sources import Corpus
from scaling.objectives import views
from tests.conftest import dummy_batch, tiny_config

TOKENIZER = tok.ByteTokenizer()
SEQ_LEN = 64
S0 = TOKENIZER.sentinel(0)


def _corpus(n_docs=80, seed=0, lo=3, hi=90):
  rng = np.random.default_rng(seed)
  docs = [bytes(rng.integers(32, 127, size=n).astype(np.uint8))
          for n in rng.integers(lo, hi, size=n_docs)]
  return Corpus(name="test", description="", train=docs[:-10],
                val=docs[-10:], train_names=[], val_names=[], corpus_hash="")


def _objective(name):
  cfg = ml_collections.ConfigDict(dict(default_config().objective))
  cfg.name = name
  return cfg


def _stream(name, corpus=None, **kw):
  args = dict(seq_len=SEQ_LEN, batch_size=8, seed=1)
  args.update(kw)
  return pipeline.TrainStream(corpus or _corpus(), TOKENIZER,
                              objective_cfg=_objective(name), **args)


# Attention implementations that run here, with their row length: splash
# (Pallas interpret mode) tiles rows in blocks of 128.
IMPLEMENTATIONS = {"reference": SEQ_LEN, "dot_product": SEQ_LEN, "splash": 128}


@functools.lru_cache(maxsize=None)
def _model_and_params(implementation="reference"):
  seq_len = IMPLEMENTATIONS[implementation]
  c = tiny_config(seq_len=seq_len, **{"model.attention": implementation})
  model = model_lib.build(c)
  params = jax.jit(lambda: nn.unbox(model_lib.init_params(model, 0)))()
  return c, model, params


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, inputs, segs, pos, prefix):
  return model.apply({"params": params}, inputs, segs, pos, prefix)


def _bidirectional_len(name, inputs, loss_mask):
  """Tokens at the start of one example that are bidirectional BY MEANING.

  Causal LM and FIM: none. Masked LM: all. Prefix LM and UL2's S: the prefix,
  i.e. every token before the first loss-bearing target (the first loss
  position is the last prefix token). Span corruption and UL2's R/X: the
  inputs part, which ends where the targets part starts with sentinel 0 for
  the second time (the first is the first span's place in the inputs).
  """
  if name in ("causal_lm", "fim"):
    return 0
  if name == "masked_lm":
    return len(inputs)
  spans = name == "span_corruption" or (name == "ul2" and inputs[0] in (
      tok.MODE_R, tok.MODE_X))
  if spans:
    return int(np.flatnonzero(inputs == S0)[1])
  return int(np.flatnonzero(loss_mask)[0]) + 1


def _must_see(name, row):
  """see[q, k]: the prediction at q may depend on input k (objective meaning)."""
  seg = row["segment_ids"]
  n = seg.shape[0]
  bidir = np.zeros(n, bool)
  for s in np.unique(seg[seg > 0]):
    where = np.flatnonzero(seg == s)
    b = _bidirectional_len(name, row["inputs"][where], row["loss_mask"][where])
    bidir[where[:b]] = True
  q, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  return (seg[q] == seg[k]) & (seg[q] > 0) & ((k <= q) | bidir[k]), bidir


def _changed(model, params, row, rng):
  """changed[q, k]: logits at q move when input k alone is replaced."""
  n = row["inputs"].shape[0]
  real = np.flatnonzero(row["segment_ids"] > 0)
  # n + 1 variants whatever the row (the extra ones unchanged): one compiled
  # shape for every row of a length
  inputs = np.repeat(row["inputs"][None], n + 1, axis=0)
  for v, k in enumerate(real, start=1):
    old = inputs[v, k]
    new = old
    while new == old:
      new = int(rng.integers(0, 256))
    inputs[v, k] = new
  tile = lambda x: np.repeat(x[None], n + 1, axis=0)  # noqa: E731
  logits = np.asarray(_apply(model, params, inputs, tile(row["segment_ids"]),
                             tile(row["positions"]), tile(row["prefix_mask"])))
  diff = np.abs(logits[1:len(real) + 1] - logits[:1]).max(axis=-1)  # [variant, q]
  changed = np.zeros((n, n), bool)
  # Unseen changes leave the logits bitwise equal here (masked keys get
  # weight exactly 0); seen ones move them by >= ~5e-4 at init.
  changed[:, real] = (diff > 1e-6).T
  return changed


def _rows_with(name, want, limit=400, seq_len=SEQ_LEN):
  """A packed training row with >= 2 examples satisfying ``want(row)``."""
  source = _stream(name, seq_len=seq_len).source
  for k in range(limit):
    row = source.row(k)
    if len(np.unique(row["segment_ids"][row["segment_ids"] > 0])) >= 2 and want(row):
      return row
  raise AssertionError(f"no {name} row found")


def _ul2_kind(row, modes):
  firsts = [row["inputs"][np.flatnonzero(row["segment_ids"] == s)[0]]
            for s in np.unique(row["segment_ids"][row["segment_ids"] > 0])]
  return set(modes) <= set(firsts)


CASES = [
    ("causal_lm", lambda r: True),
    ("fim", lambda r: (r["inputs"] == tok.MID).any()),
    ("prefix_lm", lambda r: True),
    ("span_corruption", lambda r: True),
    ("ul2", lambda r: _ul2_kind(r, (tok.MODE_S, tok.MODE_R))),
    ("ul2", lambda r: _ul2_kind(r, (tok.MODE_X,))),
    ("masked_lm", lambda r: True),
]


@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name,want", CASES,
                         ids=[f"{n}{i}" for i, (n, _) in enumerate(CASES)])
def test_prediction_unchanged_when_an_unseeable_token_changes(
    name, want, implementation):
  _, model, params = _model_and_params(implementation)
  SEQ_LEN = IMPLEMENTATIONS[implementation]  # noqa: N806  (rows of this length)
  row = _rows_with(name, want, seq_len=SEQ_LEN)
  see, bidir = _must_see(name, row)
  changed = _changed(model, params, row, np.random.default_rng(0))
  seg = row["segment_ids"]
  real = seg > 0
  # Never: a change the prediction must not see moves it.
  leaks = np.argwhere(changed & ~see & real[:, None] & real[None, :])
  assert not len(leaks), f"{name}: (q, k) leaks {leaks[:5].tolist()}"
  # And the visible really is visible (the model is not trivially constant).
  assert changed[see].all(), f"{name}: {np.argwhere(see & ~changed)[:5]}"
  # The cases, spelled out.
  q, k = np.meshgrid(np.arange(SEQ_LEN), np.arange(SEQ_LEN), indexing="ij")
  other_doc = real[:, None] & real[None, :] & (seg[q] != seg[k])
  assert not changed[other_doc].any()  # packed documents are isolated
  assert other_doc.any()
  loss = np.flatnonzero(row["loss_mask"])
  if name != "masked_lm":
    # a loss-bearing prediction never sees its own target (nor anything later)
    for p in loss[loss + 1 < SEQ_LEN]:  # a causal row's last target is the
      assert row["targets"][p] == row["inputs"][p + 1]  # next row's token
      later = (seg == seg[p]) & (np.arange(SEQ_LEN) > p)
      assert not changed[p, later].any(), p
  if name in ("causal_lm", "fim"):
    assert not bidir.any()
  if name in ("prefix_lm", "span_corruption", "ul2"):
    # prefix (inputs part) is bidirectional: its first token sees its last
    for s in np.unique(seg[real]):
      where = np.flatnonzero((seg == s) & bidir)
      if len(where) >= 2:
        assert changed[where[0], where[-1]]
      # the suffix (targets part: the hidden span content) is invisible to
      # every prefix position, and each target sees only earlier targets
      tail = np.flatnonzero((seg == s) & ~bidir)
      assert not changed[np.ix_(where, tail)].any()
      for t in tail:
        assert not changed[t, tail[tail > t]].any()
  if name == "masked_lm":
    for s in np.unique(seg[real]):
      where = np.flatnonzero(seg == s)
      assert changed[np.ix_(where, where)].all()  # bidirectional in a segment
    assert (row["inputs"][loss] == tok.MASK).any()
  if name in ("span_corruption", "ul2"):
    assert (row["inputs"] == S0).any()  # the example does hide spans


@pytest.mark.parametrize("name", obj.OBJECTIVES)
def test_same_seed_and_step_same_batch_after_resume_and_process_split(name):
  corpus = _corpus()
  walked = _stream(name, corpus)
  steps = [0, 3, 11, 40]  # 40 steps run past the first epoch
  expected = {s: walked.local_batch(s) for s in range(max(steps) + 1)}
  resumed = _stream(name, corpus)  # rebuilt from scratch, asked out of order
  halves = [_stream(name, corpus, process_index=p, process_count=2)
            for p in range(2)]
  for s in reversed(steps):
    again = resumed.local_batch(s)
    joined = {key: np.concatenate([h.local_batch(s)[key] for h in halves])
              for key in BATCH_KEYS}
    for key in BATCH_KEYS:
      np.testing.assert_array_equal(again[key], expected[s][key], err_msg=key)
      np.testing.assert_array_equal(joined[key], expected[s][key], err_msg=key)
  assert walked.epochs_at(max(steps)) > 1.0
  other = _stream(name, corpus, seed=2).local_batch(3)
  assert not np.array_equal(other["inputs"], expected[3]["inputs"])
  corrupted = {"masked_lm": tok.MASK, "span_corruption": S0, "fim": tok.MID,
               "ul2": S0, "prefix_lm": None, "causal_lm": None}[name]
  if corrupted is not None:
    assert (expected[3]["inputs"] == corrupted).any()


def test_truncated_last_document_gets_no_eos():
  """max_tokens cuts the last kept document: no EOS after it (as causal)."""
  corpus = _corpus()
  s = _stream("masked_lm", corpus, max_tokens=1000)
  assert s.unique_tokens == 1000
  source = s.source.source  # the objective's rows, under the window shuffle
  tokens = [ex["tokens"] for k in range(int(source.rows_per_epoch))
            for ex in source.row_plan(k)]
  # masked LM keeps every token: epoch 0 is exactly the capped stream
  assert sum(len(t) for t in tokens) == 1000
  capped = packing.cap_documents(
      [TOKENIZER.encode(d) for d in corpus.train], 1000, 1)
  assert capped.truncated
  n_eos = sum(int((t == tok.EOS).sum()) for t in tokens)
  assert n_eos == len(capped.docs) - 1


# --- the shared scoring view ----------------------------------------------

def _direct_continuation_bpb(name, model, params, windows):
  """Bits per byte of each window's second half, one example per call."""
  nll = nbytes = 0.0
  for w in windows:
    ex = obj.continuation_example(name, w, TOKENIZER)
    n = ex["inputs"].shape[0]
    logits = np.asarray(_apply(
        model, params, ex["inputs"][None], np.ones((1, n), np.int32),
        ex["positions"][None], ex["prefix_mask"][None])[0], np.float64)
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + \
        logits.max(-1)
    lp = logits[np.arange(n), ex["targets"]] - logz
    nll -= float((lp * ex["loss_mask"]).sum())
    nbytes += float(((ex["targets"] < 256) * ex["loss_mask"]).sum())
  return nll / (math.log(2) * nbytes)


@pytest.mark.parametrize("name", ["causal_lm", "prefix_lm", "span_corruption",
                                  "ul2"])
def test_continuation_bpb_equals_a_direct_per_window_computation(name):
  c, model, params = _model_and_params()
  c = ml_collections.ConfigDict(c.to_dict())
  c.objective.name = name
  c.eval.batches, c.eval.batch_size = 2, 4
  corpus = _corpus(n_docs=40, lo=100, hi=300)
  program = program_lib.build(c, sharding_lib.make_mesh(c))
  with program.context():
    out = evaluation.Evaluator(c, corpus, program)(params)
  window = views.continuation_window(SEQ_LEN)
  assert window == 60
  windows = evaluation.continuation_windows(corpus.val, TOKENIZER, window, 8)
  assert windows.shape == (8, 60)
  # round-robin: the 8 windows come from 8 different documents (10 hold one)
  texts = [bytes(d) for d in corpus.val]
  owners = {next(i for i, t in enumerate(texts) if bytes(w.astype(np.uint8))
                 in t) for w in windows}
  assert len(owners) == 8
  want = _direct_continuation_bpb(name, model, params, windows)
  assert out["eval_continuation_bpb"] == pytest.approx(want, rel=1e-5)
  assert out["eval_continuation_bpb_se"] > 0
  assert "eval_continuation_bpb_na" not in out and "eval_bpb_na" not in out
  assert math.isfinite(out["eval_bpb"]) and math.isfinite(out["eval_loss"])


def test_masked_lm_views_are_not_applicable_and_continuation_can_be_off():
  c, model, params = _model_and_params()
  c = ml_collections.ConfigDict(c.to_dict())
  c.objective.name = "masked_lm"
  program = program_lib.build(c, sharding_lib.make_mesh(c))
  with program.context():
    out = evaluation.Evaluator(c, _corpus(), program)(params)
  for key in ("eval_loss", "eval_bpb", "eval_bpb_se", "eval_continuation_bpb",
              "eval_continuation_bpb_se"):
    assert out[key] is None, key
  assert out["eval_bpb_na"].startswith("not applicable")
  assert out["eval_continuation_bpb_na"].startswith("not applicable")
  c.objective.name = "prefix_lm"
  c.eval.continuation = False
  ev = evaluation.Evaluator(c, _corpus(), program)
  assert ev.continuation == []
  with program.context():
    out = ev(params)
  assert out["eval_continuation_bpb"] is None
  assert "eval.continuation" in out["eval_continuation_bpb_na"]
  assert math.isfinite(out["eval_bpb"])
  with pytest.raises(ValueError, match="not applicable"):
    evaluation.continuation_batches(_corpus().val, "masked_lm", TOKENIZER,
                                    SEQ_LEN, 4, 1)
