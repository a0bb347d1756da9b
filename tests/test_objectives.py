"""Golden tests of the objectives (DESIGN.md §4; issue 5, Done-when 1, 3)."""

import collections

import jax
import ml_collections
import numpy as np
import pytest

from scaling import objectives as obj
from scaling import tokenizer as tok
from scaling.config import ConfigError, default_config
from scaling.objectives import denoise, fill_in_middle, keys, lm, masks, views

TOKENIZER = tok.ByteTokenizer()  # 128 sentinels


def _text(n: int, seed: int = 0) -> np.ndarray:
  """n random byte tokens ending in EOS (a document-final example)."""
  x = np.random.default_rng(seed).integers(0, 256, n).astype(np.int32)
  x[-1] = tok.EOS
  return x


def _allowed(prefix_mask: np.ndarray) -> np.ndarray:
  """allow[q, k] of the batch-dict attention rule for one segment."""
  n = prefix_mask.shape[0]
  q, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  return (k <= q) | prefix_mask[None, :]


def _assert_no_lookahead(example: dict) -> None:
  """A loss-bearing prediction never attends to the token it predicts."""
  allow = _allowed(example["prefix_mask"])
  for q in np.flatnonzero(example["loss_mask"]):
    assert example["targets"][q] == example["inputs"][q + 1]
    assert not allow[q, q + 1:].any(), q


# --- keys -----------------------------------------------------------------

def test_fold_in_is_bitwise_jax_fold_in():
  for seed in (0, 1, 12345, 2**32 - 1):
    for g in (0, 1, 99, 2**31 + 5, 2**32 - 1):
      expected = np.asarray(jax.random.fold_in(jax.random.PRNGKey(seed), g))
      np.testing.assert_array_equal(keys.fold_in(seed, g), expected)
  typed = jax.random.key(7)
  np.testing.assert_array_equal(
      keys.fold_in(typed, 3),
      jax.random.key_data(jax.random.fold_in(typed, 3)))
  np.testing.assert_array_equal(  # vectorised == one by one
      keys.fold_in(3, np.arange(5)),
      np.stack([keys.fold_in(3, g) for g in range(5)]))
  with pytest.raises(ValueError):
    keys.fold_in(0, 2**32)


def test_same_seed_and_index_give_the_same_example_for_every_objective():
  x = _text(300)
  for name in obj.OBJECTIVES:
    cfg = ml_collections.ConfigDict(dict(default_config().objective))
    cfg.name = name
    first = obj.transform(cfg, TOKENIZER, x, 11, 42)
    for g in range(40):  # computing other examples in between changes nothing
      obj.transform(cfg, TOKENIZER, x, 11, g)
    again = obj.transform(cfg, TOKENIZER, x, jax.random.PRNGKey(11), 42)
    for field in ("inputs", "targets", "loss_mask", "positions", "prefix_mask"):
      np.testing.assert_array_equal(first[field], again[field], err_msg=name)
    assert first["attention"] == obj.attention_kind(name)
  # and the randomness does depend on the index
  a = obj.masked_lm(x, 11, 42)["inputs"]
  assert not np.array_equal(a, obj.masked_lm(x, 11, 43)["inputs"])


# --- masked LM --------------------------------------------------------------

def test_masked_lm_15_percent_and_80_10_10():
  selected = candidates = masked = kept = replaced = 0
  random_ids = []
  for g in range(1500):
    x = _text(200, seed=g)
    x[::50] = tok.BOS  # specials are never selected
    ex = obj.masked_lm(x, 5, g)
    sel = ex["loss_mask"] == 1
    n_cand = int((x < 256).sum())
    assert sel.sum() == round(0.15 * n_cand)  # exact per example (BERT)
    assert not sel[x >= 256].any()
    np.testing.assert_array_equal(ex["targets"], x)
    np.testing.assert_array_equal(ex["inputs"][~sel], x[~sel])
    assert ex["prefix_mask"].all()  # bidirectional
    got = ex["inputs"][sel]
    masked += (got == tok.MASK).sum()
    kept += (got == x[sel]).sum()
    other = (got != tok.MASK) & (got != x[sel])
    replaced += other.sum()
    random_ids.append(got[other])
    selected += sel.sum()
    candidates += n_cand
  assert abs(selected / candidates - 0.15) < 0.01
  assert abs(masked / selected - 0.80) < 0.01
  # a random byte equal to the original counts as kept: 10% ± 0.04%
  assert abs(kept / selected - 0.10) < 0.01
  assert abs(replaced / selected - 0.10) < 0.01
  random_ids = np.concatenate(random_ids)
  assert random_ids.min() >= 0 and random_ids.max() < 256  # byte ids only
  per_16 = np.bincount(random_ids // 16, minlength=16)  # ~ uniform
  spread = per_16 / per_16.mean()
  assert spread.min() > 0.6 and spread.max() < 1.4


# --- span corruption ----------------------------------------------------------

def test_t5_length_helper_568_to_512_and_114():
  assert masks.random_spans_helper(512, 0.15, 3.0) == (568, 114)
  noise, spans = masks.noise_counts(568, 0.15, 3.0)
  assert (noise, spans) == (85, 28)
  assert 568 - noise + spans + 1 == 512 and noise + spans + 1 == 114


def _noise_runs(mask: np.ndarray) -> int:
  """Maximal runs of True in a bool [L] mask (the spans, if each is whole)."""
  rises = np.diff(np.concatenate([[0], mask.astype(np.int8)]))
  return int(np.count_nonzero(rises == 1))


def _composition(rng, total: int, parts: int) -> np.ndarray:
  """A uniformly random composition of total into parts (each >= 1)."""
  cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False))
  return np.diff(np.concatenate([[0], cuts, [total]]))


def _t5_layout_mask(length, noise_density, mean_span_length, rng):
  """T5's own layout (gap, span, …, gap, span): the negative control."""
  noise, spans = masks.noise_counts(length, noise_density, mean_span_length)
  noise_lengths = _composition(rng, noise, spans)
  gap_lengths = _composition(rng, length - noise, spans)
  runs = np.stack([gap_lengths, noise_lengths], axis=1).reshape(-1)
  return np.repeat(np.tile([False, True], spans), runs)


def _noise_masks(mask_fn, length, r, mu, n_seeds=2000):
  """bool [n_seeds, L]: one mask per example, each from its example rng."""
  words = keys.fold_in(11, np.arange(n_seeds))
  return np.stack([mask_fn(length, r, mu, keys.example_rng(w))
                   for w in words])


def test_noise_mask_exact_counts_and_whole_spans():
  rng = np.random.default_rng(0)
  for length in range(10, 700, 7):
    for r, mu in ((0.15, 3.0), (0.5, 3.0), (0.15, 8.0), (0.5, 8.0),
                  (0.15, 64.0), (0.5, 64.0)):
      mask = masks.random_spans_noise_mask(length, r, mu, rng)
      noise = round(length * r)  # no clamp binds at these lengths
      spans = max(1, round(noise / mu))
      assert masks.noise_counts(length, r, mu) == (noise, spans)
      assert mask.shape == (length,) and mask.dtype == bool
      assert mask.sum() == noise
      # each span one run, never two runs joined nor a span split
      assert _noise_runs(mask) == spans, (length, r, mu)


@pytest.mark.parametrize("length,r,mu,counts", [
    (2, 0.15, 3.0, (1, 1)),    # noise clamped up to 1
    (3, 0.15, 3.0, (1, 1)),
    (3, 0.5, 8.0, (2, 1)),     # round(1.5) = 2
    (50, 0.01, 3.0, (1, 1)),   # round(0.5) = 0 → 1
    (10, 0.9, 3.0, (9, 1)),    # spans clamped to the 1 kept token
    (10, 0.7, 1.0, (7, 3)),    # spans clamped to the 3 kept tokens
])
def test_noise_mask_degenerate_clamps(length, r, mu, counts):
  assert masks.noise_counts(length, r, mu) == counts
  noise, spans = counts
  got = _noise_masks(masks.random_spans_noise_mask, length, r, mu, 300)
  assert (got.sum(axis=1) == noise).all()
  assert all(_noise_runs(m) == spans for m in got)
  # no position is always or never noise where the counts allow both
  freq = got.mean(axis=0)
  if length - noise >= noise or spans > 1:
    assert (freq > 0).all() and (freq < 1).all(), freq


def test_noise_mask_shorter_than_two_is_empty():
  rng = np.random.default_rng(0)
  assert masks.random_spans_noise_mask(0, 0.15, 3.0, rng).shape == (0,)
  np.testing.assert_array_equal(
      masks.random_spans_noise_mask(1, 0.15, 3.0, rng), [False])


@pytest.mark.parametrize("length", [20, 128])
@pytest.mark.parametrize("r,mu", [(0.15, 3.0), (0.5, 8.0)])
def test_noise_mask_is_position_fair(length, r, mu):
  """Every position is noise with probability within 0.03 of noise / L.

  10,000 examples: at 2,000 the sampling error alone (sd 0.011 per position
  at r 0.5) takes some of 128 positions past 0.03 in about half of all seed
  sets, even for an exactly position-fair mask.
  """
  noise, spans = masks.noise_counts(length, r, mu)
  got = _noise_masks(masks.random_spans_noise_mask, length, r, mu, 10000)
  assert (got.sum(axis=1) == noise).all()
  assert all(_noise_runs(m) == spans for m in got)
  freq = got.mean(axis=0)
  np.testing.assert_allclose(freq, noise / length, atol=0.03)


@pytest.mark.parametrize("length", [20, 128])
@pytest.mark.parametrize("r,mu", [(0.15, 3.0), (0.5, 8.0)])
def test_t5_layout_fails_the_position_fairness_check(length, r, mu):
  """Negative control: T5's layout never starts with noise, always ends so."""
  noise, spans = masks.noise_counts(length, r, mu)
  got = _noise_masks(_t5_layout_mask, length, r, mu)
  assert (got.sum(axis=1) == noise).all()  # the same counts …
  assert all(_noise_runs(m) == spans for m in got)
  freq = got.mean(axis=0)
  assert freq[0] == 0.0 and freq[-1] == 1.0  # … but not position-fair
  assert np.abs(freq - noise / length).max() > 0.03


def test_single_span_position_probabilities_match_the_tiling_formula():
  """One 3-token span in 20 (r 0.15, mu 3): 1/7 or 1/6 at each position.

  The kept 17 tokens are five 3-token pieces and one 2-token piece; the
  seven arcs come in a uniformly random order, so the span is one of the six
  3-token tiles of a tiling whose 2-token remainder sits at one of 7 slots:
  position i is noise with probability 1/6 when i % 3 == 2 (never in the
  remainder) and (1 - 1/7) / 6 = 1/7 otherwise; the mean is exactly 3/20.
  """
  expected = np.where(np.arange(20) % 3 == 2, 1 / 6, 1 / 7)
  assert expected.mean() == pytest.approx(0.15)
  got = _noise_masks(masks.random_spans_noise_mask, 20, 0.15, 3.0, 20000)
  # sd 0.0026 per position; a flat 0.15 would miss the 1/6 by 0.017
  np.testing.assert_allclose(got.mean(axis=0), expected, atol=0.009)


def _reassemble_span_corruption(ex: dict) -> np.ndarray:
  """The raw tokens back: each input sentinel replaced by its target span."""
  z = ex["inputs"]
  n_inputs = int(ex["prefix_mask"].sum())
  inputs, targets = z[:n_inputs], z[n_inputs:]
  if inputs[0] in (tok.MODE_R, tok.MODE_X):
    inputs = inputs[1:]
  assert targets[-1] == tok.EOS
  is_sentinel = targets >= tok.FIRST_SENTINEL
  starts = np.flatnonzero(is_sentinel)
  spans = {int(targets[s]): targets[s + 1:e]
           for s, e in zip(starts, list(starts[1:]) + [len(targets) - 1])}
  out = []
  for t in inputs:
    out.extend(spans.pop(int(t)) if t >= tok.FIRST_SENTINEL else [t])
  assert not spans
  return np.array(out)


def test_span_corruption_layout_sentinels_and_reassembly():
  starts_with_noise = ends_with_kept = 0
  for g in range(60):
    x = _text(50 + 7 * g, seed=g)
    ex = obj.span_corruption(x, 3, g, tokenizer=TOKENIZER)
    n_prefix = int(ex["prefix_mask"].sum())
    starts_with_noise += int(ex["inputs"][0] >= tok.FIRST_SENTINEL)
    ends_with_kept += int(ex["inputs"][n_prefix - 1] < tok.FIRST_SENTINEL)
    noise, spans = masks.noise_counts(len(x), 0.15, 3.0)
    n = ex["inputs"].shape[0]
    assert n == len(x) + 2 * spans + 1
    n_inputs = int(ex["prefix_mask"].sum())
    assert n_inputs == len(x) - noise + spans
    assert ex["prefix_mask"][:n_inputs].all()
    sentinels = ex["inputs"][ex["inputs"] >= tok.FIRST_SENTINEL]
    # sentinel 0 is the highest real id, then they count down, in the inputs
    # and again in the targets
    expected = TOKENIZER.n_real - 1 - np.arange(spans)
    np.testing.assert_array_equal(sentinels[:spans], expected)
    np.testing.assert_array_equal(sentinels[spans:], expected)
    assert TOKENIZER.sentinel(0) == TOKENIZER.n_real - 1
    # loss on exactly the targets part, first predicted by the last input
    np.testing.assert_array_equal(np.flatnonzero(ex["loss_mask"]),
                                  np.arange(n_inputs - 1, n - 1))
    _assert_no_lookahead(ex)
    # no noise token is visible in the prefix: reassembly recovers x
    np.testing.assert_array_equal(
        _reassemble_span_corruption(ex), x)
  # both of the layouts T5's own mask never makes are covered above
  assert starts_with_noise > 0 and ends_with_kept > 0


def test_decoder_only_length_at_seq_len_512_is_maximal():
  raw = masks.decoder_only_raw_length(512, 0.15, 3.0)
  assert raw == 465
  assert sum(masks.span_corruption_lengths(raw, 0.15, 3.0)) <= 512
  assert sum(masks.span_corruption_lengths(raw + 1, 0.15, 3.0)) > 512
  for g in range(20):  # every example of that length fits
    ex = obj.span_corruption(_text(raw, g), 0, g, tokenizer=TOKENIZER)
    assert ex["inputs"].shape[0] <= 512
  # with a UL2 mode token (+1) for the X denoiser (mu=3, r=0.5)
  raw_x = masks.decoder_only_raw_length(512, 0.5, 3.0, extra_tokens=1)
  assert 1 + sum(masks.span_corruption_lengths(raw_x, 0.5, 3.0)) <= 512
  assert 1 + sum(masks.span_corruption_lengths(raw_x + 1, 0.5, 3.0)) > 512


def test_too_many_spans_raise_rather_than_wrap():
  few = tok.ByteTokenizer(n_sentinels=4)
  with pytest.raises(ValueError, match="sentinels"):
    obj.span_corruption(_text(400), 0, 0, tokenizer=few)


# --- prefix LM ----------------------------------------------------------------

class _FixedSplit:
  def __init__(self, split):
    self.split = split

  def integers(self, lo, hi):
    assert (lo, hi) == (1, 6)
    return self.split


def test_prefix_lm_boundary_on_a_hand_written_example():
  x = np.array([10, 11, 12, 13, 14, tok.EOS])
  ex = lm.apply_prefix_lm(x, _FixedSplit(3))  # prefix 10 11 12 | 13 14 EOS
  np.testing.assert_array_equal(ex["inputs"], x)
  np.testing.assert_array_equal(ex["targets"], [11, 12, 13, 14, tok.EOS,
                                                tok.PAD])
  np.testing.assert_array_equal(ex["prefix_mask"], [1, 1, 1, 0, 0, 0])
  # the last prefix position (2) predicts the first suffix token (13): loss
  np.testing.assert_array_equal(ex["loss_mask"], [0, 0, 1, 1, 1, 0])
  allow = _allowed(ex["prefix_mask"])
  assert allow[0, 2] and not allow[2, 3]  # bidirectional prefix, causal after
  assert allow[4, :5].all() and not allow[4, 5]
  _assert_no_lookahead(ex)


def test_prefix_lm_split_is_uniform_in_1_to_length():
  x = np.array([1, 2, 3, 4, tok.EOS])
  splits = collections.Counter(
      int(obj.prefix_lm(x, 9, g)["prefix_mask"].sum()) for g in range(4000))
  assert set(splits) == {1, 2, 3, 4}
  assert all(abs(c / 4000 - 0.25) < 0.03 for c in splits.values())


# --- UL2 ----------------------------------------------------------------------

def test_ul2_mode_tokens_per_paradigm():
  mode_token = {"R": tok.MODE_R, "X": tok.MODE_X, "S": tok.MODE_S}
  seen = set()
  for g in range(150):
    x = _text(300, seed=g)
    d = obj.ul2_denoiser(4, g)
    ex = obj.ul2(x, 4, g, tokenizer=TOKENIZER)
    seen.add(d.name)
    assert ex["inputs"][0] == mode_token[d.paradigm] and ex["prefix_mask"][0]
    modes = [tok.MODE_R, tok.MODE_X, tok.MODE_S]
    assert np.isin(ex["inputs"], modes).sum() == 1
    _assert_no_lookahead(ex)
    if d.paradigm == "S":
      assert ex["inputs"].shape[0] == len(x) + 1
      np.testing.assert_array_equal(ex["inputs"][1:], x)
    else:
      noise, spans = masks.noise_counts(len(x), d.noise_density,
                                        d.mean_span_length)
      assert ex["inputs"].shape[0] == len(x) + 2 * spans + 2
      assert (ex["inputs"] >= tok.FIRST_SENTINEL).sum() == 2 * spans
      np.testing.assert_array_equal(
          _reassemble_span_corruption(ex), x)
  assert seen == {d.name for d in obj.UL2_DENOISERS}


@pytest.mark.parametrize("rates", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0),
                                   (0.0, 1.0, 3.0)])
def test_ul2_mixture_rates(rates):
  words = keys.fold_in(8, np.arange(60000))
  idx = denoise.ul2_mode_indices(words, rates)
  freq = np.bincount(idx, minlength=7) / idx.size
  p = np.array(rates) / sum(rates)
  expected = np.array([p[0] / 2] * 2 + [p[1] / 4] * 4 + [p[2]])
  np.testing.assert_allclose(freq, expected, atol=0.008)
  # the examples follow the same draw
  for g in range(0, 300, 7):
    ex = obj.ul2(_text(100, g), 8, g, tokenizer=TOKENIZER, rates=rates)
    d = obj.UL2_DENOISERS[idx[g]]
    assert ex["inputs"][0] == d.mode_token


# --- FIM ----------------------------------------------------------------------

def _reassemble_fim(z: np.ndarray, layout: str) -> np.ndarray:
  """The document back from a FIM sequence of a known layout."""
  if layout == "none":
    assert not np.isin(z, [tok.PRE, tok.SUF, tok.MID]).any()
    return z
  eos = [tok.EOS] if z[-1] == tok.EOS else []
  body = z[:-1] if eos else z
  assert (np.isin(body, [tok.PRE, tok.SUF, tok.MID]).sum() == 3
          and body[0] == tok.PRE)
  mid = int(np.flatnonzero(body == tok.MID)[0])
  if layout == "spm":  # PRE SUF suffix MID prefix middle
    assert body[1] == tok.SUF
    return np.concatenate([body[mid + 1:], body[2:mid], eos])
  # PSM: PRE prefix SUF suffix MID middle
  suf = int(np.flatnonzero(body == tok.SUF)[0])
  assert suf < mid
  prefix, suffix, middle = body[1:suf], body[suf + 1:mid], body[mid + 1:]
  return np.concatenate([prefix, middle, suffix, eos])


def test_fim_psm_and_spm_reassemble_to_the_document():
  layouts = collections.Counter()
  for g in range(400):
    x = _text(40 + g % 30, seed=g)
    if g % 5 == 0:
      x = x[:-1]  # a piece that does not end its document
    ex = obj.fim(x, 2, g)
    layout = obj.fim_mode(2, g)
    layouts[layout] += 1
    np.testing.assert_array_equal(_reassemble_fim(ex["inputs"], layout), x)
    n = ex["inputs"].shape[0]
    assert n == len(x) + (0 if layout == "none" else 3)
    assert not ex["prefix_mask"].any() and ex["attention"] == "causal"
    np.testing.assert_array_equal(ex["loss_mask"], [1] * (n - 1) + [0])
  assert set(layouts) == {"none", "psm", "spm"}
  words = keys.fold_in(2, np.arange(60000))
  freq = np.bincount(fill_in_middle.fim_mode_indices(words, 0.5),
                     minlength=3) / 60000
  np.testing.assert_allclose(freq, [0.5, 0.25, 0.25], atol=0.008)


# --- registry, validation, scoring views --------------------------------------

def test_attention_kinds():
  assert {n: obj.attention_kind(n) for n in obj.OBJECTIVES} == dict(
      causal_lm="causal", masked_lm="bidirectional", prefix_lm="prefix",
      span_corruption="prefix", ul2="prefix", fim="causal")
  with pytest.raises(ConfigError) as e:
    obj.attention_kind("bert")
  assert e.value.field == "objective.name"


def _config(name, seq_len=512, n_sentinels=128, **objective):
  c = default_config()
  c.objective.name = name
  c.seq_len = seq_len
  c.tokenizer.n_sentinels = n_sentinels
  c.objective.update(objective)
  return c


def test_validate_rejects_span_counts_beyond_the_sentinels():
  for name in obj.OBJECTIVES:
    obj.validate(_config(name, 512))
  with pytest.raises(ConfigError) as e:
    obj.validate(_config("nope"))
  assert e.value.field == "objective.name"
  # UL2's X (mu=3, r=0.5) at 2048 needs ~255 sentinels
  with pytest.raises(ConfigError) as e:
    obj.validate(_config("ul2", 2048))
  assert e.value.field == "tokenizer.n_sentinels"
  assert "X(mu=3,r=0.5)" in str(e.value)
  obj.validate(_config("ul2", 2048, ul2_rates=(1.0, 0.0, 1.0)))  # no X
  with pytest.raises(ConfigError) as e:
    obj.validate(_config("span_corruption", 8192))
  msg = str(e.value)
  needed = int(msg.split("up to ")[1].split()[0])
  fits = int(msg.split("seq_len <= ")[1])
  obj.validate(_config("span_corruption", 8192, n_sentinels=needed))
  obj.validate(_config("span_corruption", fits))
  with pytest.raises(ConfigError):
    obj.validate(_config("span_corruption", fits + 1))
  for bad in (dict(name="masked_lm", mlm_rate=0.0),
              dict(name="fim", fim_rate=1.5),
              dict(name="ul2", ul2_rates=(0.0, 0.0, 0.0)),
              dict(name="span_corruption", noise_density=1.0)):
    with pytest.raises(ConfigError):
      obj.validate(_config(**bad))
  with pytest.raises(ConfigError) as e:
    obj.validate(_config("span_corruption", seq_len=4))
  assert e.value.field == "seq_len"


def test_scoring_views_and_continuation_forms():
  mlm = obj.scoring_views("masked_lm")
  for view in ("causal_bpb", "continuation_bpb"):
    assert not mlm[view]["applicable"]
    assert "bidirectional" in mlm[view]["reason"]
  with pytest.raises(ValueError, match="not applicable"):
    obj.continuation_example("masked_lm", np.arange(10), TOKENIZER)
  window = np.random.default_rng(1).integers(0, 256, 64).astype(np.int32)
  assert views.continuation_window(256) == 252
  forms = set()
  for name in obj.OBJECTIVES:
    if name == "masked_lm":
      continue
    v = obj.scoring_views(name)
    assert v["causal_bpb"]["applicable"] and v["continuation_bpb"]["applicable"]
    forms.add(v["continuation_bpb"]["form"])
    ex = obj.continuation_example(name, window, TOKENIZER)
    assert ex["inputs"].shape[0] <= 64 + views.CONTINUATION_OVERHEAD
    # the loss falls on exactly the second half, in every form
    np.testing.assert_array_equal(ex["targets"][ex["loss_mask"] == 1],
                                  window[32:])
    _assert_no_lookahead(ex)
  assert forms == {"causal", "prefix", "ul2_s", "span"}
