"""Decoding with the key/value cache equals full recomputation.

Teacher-forced, the cached decoder's logits at each of 64 steps (after the
prefill) equal those of the full forward pass over the whole row within
1e-5, for every position encoding, grouped KV heads, prefix attention, left
padding and CompleteP's multipliers; a cache that is off by one position, or
that lets padding be attended, fails the same comparison. Greedy generation from a trained model
is token-for-token that of recomputation; sampling follows
softmax(logits / T) and is seeded; generation stops at EOS and at the row
length and never produces PAD or padded ids.
"""

import functools

import flax.linen as nn
import jax
import numpy as np
import pytest

from scaling import cli
from scaling import decode
from scaling import generate as generate_lib
from scaling import model as model_lib
from scaling import tokenizer as tok
from scaling import train as train_lib
from tests.conftest import tiny_config

STEPS = 64
TOLERANCE = 1e-5
N_REAL = tok.ByteTokenizer().n_real


@functools.partial(jax.jit, static_argnums=0)
def _extend(model, params, batch, cache):
  return model.apply({"params": params}, batch["inputs"], batch["segment_ids"],
                     batch["positions"], batch["prefix_mask"], cache=cache)


def _init(config):
  model = model_lib.build(config)
  params = jax.jit(lambda: nn.unbox(model_lib.init_params(model, 0)))()
  return model, params


def _full_logits(model, params, tokens, n_prefix):
  """The full forward pass over one right-padded row: [n, V] logits."""
  length, n = model.seq_len, tokens.size
  inputs = np.full((1, length), tok.PAD, np.int32)
  inputs[0, :n] = tokens
  segs = np.zeros((1, length), np.int32)
  segs[0, :n] = 1
  pos = np.zeros((1, length), np.int32)
  pos[0, :n] = np.arange(n)
  prefix = np.zeros((1, length), bool)
  prefix[0, :n_prefix] = True
  return np.asarray(decode._forward(model, params, inputs, segs, pos,
                                    prefix))[0, :n]


def _worst_difference(model, params, *, position_shift=0, pad_segment=0):
  """Max |cached - full| logit over the prefill and 64 teacher-forced steps
  of three left-padded rows (one causal, two with a prefix)."""
  rng = np.random.default_rng(0)
  prompts = [rng.integers(0, 256, n).astype(np.int32) for n in (12, 5, 9)]
  prefixes = [0, 5, 3]
  conts = [rng.integers(0, 256, STEPS).astype(np.int32) for _ in prompts]
  full = [_full_logits(model, params, np.concatenate([p, c]), k)
          for p, c, k in zip(prompts, conts, prefixes)]
  batch = decode.prompt_batch(prompts, prefixes)
  batch["segment_ids"][batch["segment_ids"] == 0] = pad_segment
  cache = model_lib.empty_cache(model.cfg, len(prompts),
                                batch["inputs"].shape[1] + STEPS)
  logits, cache = _extend(model, params, batch, cache)
  worst = max(np.abs(np.asarray(logits)[b, -1] - full[b][p.size - 1]).max()
              for b, p in enumerate(prompts))
  for t in range(STEPS):
    step = dict(
        inputs=np.array([[c[t]] for c in conts], np.int32),
        segment_ids=np.ones((3, 1), np.int32),
        positions=np.array([[p.size + t + position_shift] for p in prompts],
                           np.int32),
        prefix_mask=np.zeros((3, 1), bool))
    logits, cache = _extend(model, params, step, cache)
    worst = max(worst, max(
        np.abs(np.asarray(logits)[b, 0] - full[b][p.size + t]).max()
        for b, p in enumerate(prompts)))
  return worst


# init_std 0.3 makes attention far from uniform, so a wrong key or position
# moves the logits by much more than the tolerance.
@pytest.mark.parametrize("overrides", [
    {"model.positions": "rope"},
    {"model.positions": "learned"},
    {"model.positions": "sinusoidal"},
    {"model.positions": "rope", "model.scan_layers": False,
     "model.attention": "dot_product"},
    # CompleteP at twice its base width and depth: residual-branch and logit
    # multipliers of 2^-1 that the cached path must apply as well.
    {"model.positions": "rope", "model.parametrization": "completep",
     "model.base_d_model": 16, "model.base_n_layers": 1},
], ids=["rope", "learned", "sinusoidal", "rope-unscanned-dot_product",
        "rope-completep"])
def test_cached_logits_equal_full_recomputation_at_every_step(overrides):
  c = tiny_config(seq_len=80, **{"model.init_std": 0.3, **overrides})
  model, params = _init(c)
  assert _worst_difference(model, params) <= TOLERANCE
  if overrides in ({"model.positions": "rope"},
                   {"model.positions": "learned"}):
    # Negative controls (same compiled programs): a cache one position off,
    # and padding that joins the row's segment (so it is attended), both
    # fail the same comparison.
    assert _worst_difference(model, params, position_shift=1) > 1e-3
    assert _worst_difference(model, params, pad_segment=1) > 1e-3


def test_prompt_batch_left_pads_by_hand():
  batch = decode.prompt_batch([[5, 6, 7], [9]], [2, 0])
  np.testing.assert_array_equal(batch["inputs"], [[5, 6, 7], [tok.PAD] * 2 + [9]])
  np.testing.assert_array_equal(batch["segment_ids"], [[1, 1, 1], [0, 0, 1]])
  np.testing.assert_array_equal(batch["positions"], [[0, 1, 2], [0, 0, 0]])
  np.testing.assert_array_equal(batch["prefix_mask"], [[1, 1, 0], [0, 0, 0]])
  assert decode.prompt_batch([[1]], slots=4)["inputs"].shape == (1, 4)
  with pytest.raises(ValueError, match="at least one token"):
    decode.prompt_batch([[]])
  with pytest.raises(ValueError, match="prompt slots"):
    decode.prompt_batch([[1, 2, 3]], slots=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A byte LM trained for 60 steps (rows of 64), restored as `generate` does."""
  workdir = tmp_path_factory.mktemp("lm")
  c = tiny_config(seq_len=64, **{"train.steps": 60, "train.log_every": 20,
                                 "eval.every": 60, "checkpoint.every": 60,
                                 "batch_size": 16, "eval.continuation": False})
  assert train_lib.train(c, workdir)["status"] == "finished"
  config, program, params = generate_lib.load_run(f"{workdir}@60")
  return workdir, config, program.model, params


PROMPTS = [b"def __init__(self", b"import os\n", b"    return ", b"class "]


def test_greedy_generation_with_the_cache_equals_recomputation(trained):
  _, _, model, params = trained
  prompts = [np.frombuffer(p, np.uint8).astype(np.int32) for p in PROMPTS]
  prefixes = [0, 0, 4, 0]
  cached = decode.generate(model, params, decode.prompt_batch(prompts, prefixes),
                           max_new_tokens=40, n_real=N_REAL)
  uncached = decode.generate_uncached(model, params, prompts, prefixes,
                                      max_new_tokens=40, n_real=N_REAL)
  np.testing.assert_array_equal(cached, uncached)
  assert (cached != tok.PAD).sum() > 100  # it generated, not stopped at once
  # A prompt decoded alone gives the same tokens as in the padded batch.
  alone = decode.generate(model, params, decode.prompt_batch(prompts[1:2]),
                          max_new_tokens=40, n_real=N_REAL)
  np.testing.assert_array_equal(alone[0], cached[1])


def test_generation_stops_at_the_row_length_and_never_emits_pad(trained):
  _, _, model, params = trained
  prompt = np.full(61, ord(" "), np.int32)  # 3 positions left of 64
  for temperature in (0.0, 5.0):
    out = decode.generate(model, params, decode.prompt_batch([prompt] * 8),
                          max_new_tokens=10, n_real=N_REAL,
                          temperature=temperature)
    assert (out[:, 3:] == tok.PAD).all()
    real = out[:, :3][out[:, :3] != tok.PAD]
    assert (real < N_REAL).all() and not (real == tok.PAD).any()


def test_eos_ends_a_row():
  # A model whose logits are 10 for EOS and 0 elsewhere, whatever the input:
  # LayerNorm with a zero scale outputs its bias (10 on feature 0), and only
  # EOS reads feature 0.
  model, params = _init(tiny_config(**{"model.norm": "layernorm"}))
  params = jax.tree.map(np.array, params)
  params["final_norm"]["scale"][:] = 0.0
  params["final_norm"]["bias"][:] = 0.0
  params["final_norm"]["bias"][0] = 10.0
  params["unembedding"][:] = 0.0
  params["unembedding"][0, tok.EOS] = 1.0
  prompts = [np.frombuffer(p, np.uint8).astype(np.int32) for p in PROMPTS]
  out = decode.generate(model, params, decode.prompt_batch(prompts),
                        max_new_tokens=5, n_real=N_REAL)
  assert (out[:, 0] == tok.EOS).all() and (out[:, 1:] == tok.PAD).all()
  assert decode.texts(out) == [""] * 4
  np.testing.assert_array_equal(out, decode.generate_uncached(
      model, params, prompts, max_new_tokens=5, n_real=N_REAL))


def _softmax(logits, allowed, temperature):
  z = np.where(allowed, logits / temperature, -np.inf)
  p = np.exp(z - z.max())
  return p / p.sum()


def test_sampling_follows_softmax_over_temperature_and_is_seeded(trained):
  _, _, model, params = trained
  prompt = np.frombuffer(b"    return self.", np.uint8).astype(np.int32)
  rows = 4000
  batch = decode.prompt_batch([prompt] * rows)
  logits = _full_logits(model, params, prompt, 0)[-1]
  ids = np.arange(logits.size)
  allowed = (ids < N_REAL) & (ids != tok.PAD)
  for temperature, wrong in ((1.0, 0.5), (0.5, 1.0)):
    p = _softmax(logits, allowed, temperature)
    first = decode.generate(model, params, batch, max_new_tokens=1,
                            n_real=N_REAL, temperature=temperature, seed=3)[:, 0]
    freq = np.bincount(first, minlength=logits.size) / rows
    # Total variation of n exact samples: E|f_i - p_i| = sqrt(2 p_i (1 - p_i)
    # / (pi n)) (normal approximation), so E[TV] is half their sum.
    noise = 0.5 * np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * rows)))
    assert 0.5 * np.abs(freq - p).sum() < 1.5 * noise, temperature
    # The other temperature's distribution is rejected (the check can fail).
    q = _softmax(logits, allowed, wrong)
    assert 0.5 * np.abs(freq - q).sum() > 3 * noise, temperature
  again = decode.generate(model, params, batch, max_new_tokens=1,
                          n_real=N_REAL, temperature=1.0, seed=3)[:, 0]
  other = decode.generate(model, params, batch, max_new_tokens=1,
                          n_real=N_REAL, temperature=1.0, seed=4)[:, 0]
  first = decode.generate(model, params, batch, max_new_tokens=1,
                          n_real=N_REAL, temperature=1.0, seed=3)[:, 0]
  np.testing.assert_array_equal(again, first)
  assert (other != first).mean() > 0.1


def test_generate_command_prints_the_greedy_continuation(trained, capsys):
  workdir, _, model, params = trained
  prompt = "def __init__(self"
  assert cli.main(["generate", f"{workdir}@60", "--prompt", prompt,
                   "--max-new-tokens", "30"]) == 0
  printed = capsys.readouterr().out
  tokens = decode.generate_uncached(
      model, params, [np.frombuffer(prompt.encode(), np.uint8)],
      max_new_tokens=30, n_real=N_REAL)
  assert printed == decode.texts(tokens)[0] + "\n"
  assert cli.main(["generate", f"{workdir}@60", "--prompt", ""]) == 2
  assert "--prompt: is empty" in capsys.readouterr().err
  assert cli.main(["generate", f"{workdir}@7", "--prompt", "x"]) == 2
  assert "no checkpoint at step 7" in capsys.readouterr().err
