"""Causal packing (DESIGN.md §4): exact rows on hand-written documents."""

import numpy as np
import pytest

from scaling import tokenizer as tok
from scaling.data import packing

EOS, PAD = tok.EOS, tok.PAD


def _doc(text: str) -> np.ndarray:
  return np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int32)


def test_segment_row_document_boundary_and_eos_rule():
  # Row of L+1 = 9 tokens: "ab" EOS | "cde" EOS | "f"... (f continues)
  tokens = np.array([97, 98, EOS, 99, 100, 101, EOS, 102, 103])
  doc = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
  r = packing.segment_row(tokens, doc)
  np.testing.assert_array_equal(r["inputs"], tokens[:-1])
  np.testing.assert_array_equal(r["targets"], tokens[1:])
  np.testing.assert_array_equal(r["segment_ids"], [1, 1, 1, 2, 2, 2, 2, 3])
  np.testing.assert_array_equal(r["positions"], [0, 1, 2, 0, 1, 2, 3, 0])
  # b->EOS bears loss; EOS->c (next document's first token) does not.
  np.testing.assert_array_equal(r["loss_mask"], [1, 1, 0, 1, 1, 1, 0, 1])
  assert not r["prefix_mask"].any()
  assert {k: v.dtype for k, v in r.items()} == dict(
      inputs=np.int32, targets=np.int32, loss_mask=np.float32,
      segment_ids=np.int32, positions=np.int32, prefix_mask=np.bool_)


def test_segment_row_padding_has_no_segment_and_no_loss():
  tokens = np.array([120, 121, EOS, 7, 7, 7])  # padding slots hold junk
  doc = np.array([4, 4, 4, -1, -1, -1])
  r = packing.segment_row(tokens, doc)
  np.testing.assert_array_equal(r["inputs"], [120, 121, EOS, PAD, PAD])
  np.testing.assert_array_equal(r["targets"], [121, EOS, PAD, PAD, PAD])
  np.testing.assert_array_equal(r["segment_ids"], [1, 1, 1, 0, 0])
  np.testing.assert_array_equal(r["positions"], [0, 1, 2, 0, 0])
  np.testing.assert_array_equal(r["loss_mask"], [1, 1, 0, 0, 0])
  pad = packing.padding_row(4)
  assert (pad["inputs"] == PAD).all() and (pad["segment_ids"] == 0).all()
  assert pad["loss_mask"].sum() == 0


def test_rows_by_hand_across_row_and_epoch_boundaries():
  docs = [_doc("abc"), _doc("de")]  # stream per epoch: 4 + 3 = 7 tokens
  rows = packing.CausalRows(docs, seq_len=4, seed=3)
  assert rows.unique_tokens == 7 and rows.rows_per_epoch == pytest.approx(1.4)
  spans = {0: [97, 98, 99, EOS], 1: [100, 101, EOS]}
  stream, occ = [], []
  for epoch in range(3):
    order, offsets = rows.epoch_order(epoch)
    np.testing.assert_array_equal(offsets, np.cumsum(
        [0] + [len(spans[d]) for d in order]))
    for rank, d in enumerate(order):
      stream += spans[d]
      occ += [epoch * 2 + rank] * len(spans[d])
  for k in range(4):
    tokens, occurrence = rows.row_tokens(k)
    np.testing.assert_array_equal(tokens, stream[5 * k:5 * k + 5])
    np.testing.assert_array_equal(occurrence, occ[5 * k:5 * k + 5])
  # Row 1 = stream[5:10]: its first tokens continue a document of row 0,
  # which starts a new segment at position 0.
  r1 = rows.row(1)
  assert r1["segment_ids"][0] == 1 and r1["positions"][0] == 0


def _naive_rows(docs, seq_len, seed, n_rows, max_tokens=-1):
  """Independent reference: materialise the whole stream, loop per token."""
  capped = packing.cap_documents(docs, max_tokens, seed)
  spans = [list(d) + [EOS] for d in capped.docs]
  if capped.truncated:
    spans[-1] = spans[-1][:-1]
  stream, occ = [], []
  epoch = 0
  while len(stream) < n_rows * (seq_len + 1):
    order = np.random.default_rng([seed, 0, epoch]).permutation(len(spans))
    for rank, d in enumerate(order):
      stream += spans[d]
      occ += [(epoch, rank)] * len(spans[d])
    epoch += 1
  out = []
  for k in range(n_rows):
    lo = k * (seq_len + 1)
    t, o = stream[lo:lo + seq_len + 1], occ[lo:lo + seq_len + 1]
    seg, pos, loss = [], [], []
    for i in range(seq_len):
      new = i == 0 or o[i] != o[i - 1]
      seg.append((seg[-1] if seg else 0) + new)
      pos.append(0 if new else pos[-1] + 1)
      loss.append(float(o[i + 1] == o[i]))
    out.append(dict(inputs=t[:-1], targets=t[1:], segment_ids=seg,
                    positions=pos, loss_mask=loss))
  return out


@pytest.mark.parametrize("max_tokens", [-1, 23, 40])
def test_rows_equal_naive_reference(max_tokens):
  rng = np.random.default_rng(0)
  docs = [rng.integers(0, 256, size=n) for n in [1, 5, 9, 2, 14, 3, 7]]
  rows = packing.CausalRows(docs, seq_len=6, seed=11, max_tokens=max_tokens)
  reference = _naive_rows(docs, 6, 11, 30, max_tokens)
  for k in reversed(range(30)):  # random access, not in order
    got = rows.row(k)
    for key, want in reference[k].items():
      np.testing.assert_array_equal(got[key], want, err_msg=f"{key} row {k}")
    # The loss never crosses an EOS into the next document.
    assert not (got["loss_mask"][got["inputs"] == EOS]).any()


def test_row_is_pure_function_of_seed_and_index():
  rng = np.random.default_rng(1)
  docs = [rng.integers(0, 256, size=n) for n in rng.integers(1, 50, size=40)]
  a = packing.CausalRows(docs, seq_len=16, seed=5)
  b = packing.CausalRows(docs, seq_len=16, seed=5)
  c = packing.CausalRows(docs, seq_len=16, seed=6)
  ks = [0, 1, 1000, 7, 999, 123456]
  for k in ks:
    np.testing.assert_array_equal(a.row(k)["inputs"], b.row(k)["inputs"])
  assert any((a.row(k)["inputs"] != c.row(k)["inputs"]).any() for k in ks)


def test_each_epoch_is_a_permutation_of_the_documents():
  docs = [_doc(s) for s in ["alpha", "beta", "gamma", "delta", "eps"]]
  rows = packing.CausalRows(docs, seq_len=7, seed=0)
  width, total = 8, rows.unique_tokens  # 5 + 4 + 5 + 5 + 3 + 5 EOS = 27
  assert total == 27
  n = 2 * total // width + 2
  stream = np.concatenate([rows.row_tokens(k)[0] for k in range(n)])
  orders = [tuple(rows.epoch_order(e)[0]) for e in range(2)]
  for e in range(2):
    epoch = stream[e * total:(e + 1) * total]
    assert (epoch == EOS).sum() == 5
    want = np.concatenate([np.append(docs[i], EOS) for i in orders[e]])
    np.testing.assert_array_equal(epoch, want)
  assert orders[0] != orders[1]  # a fresh order per epoch


def test_max_tokens_caps_unique_tokens_and_counts_epochs():
  docs = [_doc("x" * 10), _doc("y" * 20), _doc("z" * 30)]
  capped = packing.cap_documents(docs, 25, seed=0)
  assert capped.unique_tokens == 25
  assert sum(len(d) for d in capped.docs) + (len(capped.docs) - 1) == 25
  assert capped.truncated
  rows = packing.CausalRows(docs, seq_len=4, seed=0, max_tokens=25)
  assert rows.unique_tokens == 25 and rows.rows_per_epoch == 5.0
  assert rows.epochs_at_rows(15) == pytest.approx(3.0)
  # Every epoch repeats the same 25 tokens; the truncated piece gets no EOS.
  stream = np.concatenate([rows.row_tokens(k)[0] for k in range(15)])
  for e in range(3):
    part = stream[25 * e:25 * (e + 1)]
    assert sorted(part.tolist()) == sorted(stream[:25].tolist())
    assert (part == EOS).sum() == len(capped.docs) - 1
  # The cap is the same documents for the same seed, whatever is asked later.
  again = packing.cap_documents(docs, 25, seed=0)
  assert all((x == y).all() for x, y in zip(capped.docs, again.docs))
  # A cap above the corpus keeps everything; an exact fit truncates nothing.
  assert packing.cap_documents(docs, 10**6, 0).unique_tokens == 63
  assert not packing.cap_documents(docs, 63, 0).truncated
  with pytest.raises(ValueError, match="max_tokens"):
    packing.cap_documents(docs, 0, 0)


def test_pack_sequential_pads_only_the_end():
  docs = [_doc("hello"), _doc("world!")]  # 6 + 7 = 13 tokens
  rows = packing.pack_sequential(docs, seq_len=4)  # width 5 -> 3 rows
  assert len(rows) == 3
  last = rows[-1]
  # Stream tail: tokens 10..12 = "d!" EOS, then 2 padding slots.
  np.testing.assert_array_equal(last["inputs"], [100, 33, EOS, PAD])
  np.testing.assert_array_equal(last["segment_ids"], [1, 1, 1, 0])
  np.testing.assert_array_equal(last["loss_mask"], [1, 1, 0, 0])
  for r in rows[:-1]:
    assert (r["segment_ids"] > 0).all()


def test_changing_one_document_changes_only_its_tokens():
  """Data side of Done-when 5: the row layout ignores document contents."""
  rng = np.random.default_rng(2)
  docs = [rng.integers(0, 256, size=n) for n in rng.integers(5, 40, size=12)]
  edited = list(docs)
  edited[4] = (docs[4] + 1) % 256  # same length, every byte changed
  a = packing.CausalRows(docs, seq_len=24, seed=9)
  b = packing.CausalRows(edited, seq_len=24, seed=9)
  changed = 0
  for k in range(30):
    ra, rb = a.row(k), b.row(k)
    for key in ("segment_ids", "positions", "loss_mask", "prefix_mask"):
      np.testing.assert_array_equal(ra[key], rb[key])
    occurrence = a.row_tokens(k)[1][:-1]
    rank = occurrence % a.n_docs
    epoch = occurrence // a.n_docs
    is_doc4 = np.array([a.epoch_order(e)[0][r] == 4
                        for e, r in zip(epoch, rank)])
    np.testing.assert_array_equal(ra["inputs"] != rb["inputs"],
                                  is_doc4 & (ra["inputs"] != EOS))
    changed += is_doc4.sum()
  assert changed > 0
