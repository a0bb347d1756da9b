"""Parametrisations (SP, μP, CompleteP): multipliers derived from shapes,
the optimizer's per-parameter rules, validation and identities. The
coordinate checks of record are in ``test_coord_check.py``."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scaling import config as config_lib
from scaling import identity
from scaling import model as model_lib
from scaling import optim
from scaling import parametrization as param_lib
from scaling import program as program_lib
from scaling import sharding
from scaling import validation
from tests.conftest import dummy_batch, tiny_config


def _wide(par="mup", d_model=128, **overrides):
  """tiny_config (d_model 32, 4 heads of 8, 2 KV heads, d_ff 64, 2 layers)
  grown by heads to ``d_model`` with base d_model 32."""
  r = d_model // 32
  return tiny_config(**{"model.d_model": d_model, "model.n_heads": 4 * r,
                        "model.n_kv_heads": 2 * r, "model.d_ff": 64 * r,
                        "model.parametrization": par, "model.base_d_model": 32,
                        "model.base_n_layers": 2, **overrides})


def test_mup_multipliers_follow_the_practitioners_table():
  """Width ×4 from the base: hidden init std /2 (variance /4), Adam lr /4,
  weight decay ×4, ε /4; the readout keeps the base init 1/sqrt(32) and the
  logits get ×1/4; embeddings and the final norm are unchanged."""
  par = model_lib.build(_wide()).par
  assert (par.width_mult, par.logit_mult, par.residual_mult) == (4.0, 0.25, 1.0)
  assert par.attention_scale == 8 ** -0.5  # d_head 8 is the base's: SP's
  for key in ("attn/q", "attn/k", "attn/v", "mlp/wi"):
    r = par.rule(key)
    assert (r.kind, r.init_std, r.lr, r.weight_decay, r.eps) == (
        "hidden", 0.02 / 2, 0.25, 4.0, 0.25), key
  for key in ("attn/o", "mlp/wo"):  # base SP std 0.02/sqrt(2·2 layers), /2
    assert par.rule(key).init_std == pytest.approx(0.02 / 2 / 2)
  readout = par.rule("unembedding")
  assert (readout.kind, readout.lr, readout.eps) == ("output", 1.0, 1.0)
  assert readout.init_std == pytest.approx(1 / math.sqrt(32))
  embed = par.rule("embedding")
  assert (embed.kind, embed.init_std, embed.lr) == ("input", 1.0, 1.0)
  norm = par.rule("attn_norm/scale")
  assert (norm.kind, norm.lr, norm.eps) == ("vector", 1.0, 0.25)
  assert par.rule("final_norm/scale").eps == 1.0  # outside the blocks


def test_multipliers_come_from_shapes_not_axis_names():
  """The head dim ('kv' axis) stays fixed when width grows by heads; the
  fan-in of the output projection [heads, d_head, d_model] is heads·d_head.
  Scanned and unrolled layers (a leading layers dim or not) and grouped
  KV heads give the same rules."""
  scanned = model_lib.build(_wide()).par
  unrolled = model_lib.build(_wide(**{"model.scan_layers": False})).par
  assert scanned.rules == unrolled.rules
  o = scanned.rule("attn/o")
  assert (o.m_in, o.m_out) == (4.0, 4.0)
  k = scanned.rule("attn/k")  # [d_model, kv_heads, d_head]: kv_heads grow
  assert (k.m_in, k.m_out) == (4.0, 4.0)


def test_completep_scales_residual_branches_and_eps_with_depth():
  """Dey et al. 2025 Table 1, α = 1: branches × 1/m_L, hidden lr × m_L^0,
  ε × 1/(m_N·m_L) in the blocks; init stds of the base depth."""
  par = model_lib.build(_wide("completep", **{"model.n_layers": 8})).par
  assert (par.depth_mult, par.residual_mult) == (4.0, 0.25)
  q, o = par.rule("attn/q"), par.rule("attn/o")
  assert (q.lr, q.eps) == (0.25, 1 / 16)
  assert o.init_std == pytest.approx(0.02 / math.sqrt(2 * 2) / 2)
  assert par.rule("mlp_norm/scale").eps == 1 / 16
  assert par.rule("unembedding").eps == 1.0
  mup = model_lib.build(_wide("mup", **{"model.n_layers": 8})).par
  assert mup.residual_mult == 1.0  # μP does not touch depth
  assert mup.rule("attn/o").init_std == pytest.approx(
      0.02 / math.sqrt(2 * 8) / 2)


@pytest.mark.parametrize("zero_init", param_lib.ZERO_INIT)
@pytest.mark.parametrize("par", ["mup", "completep"])
def test_at_the_base_shape_every_rule_is_sp(par, zero_init):
  config = tiny_config(**{"model.parametrization": par,
                          "model.base_d_model": 32, "model.base_n_layers": 2,
                          "model.zero_init": zero_init,
                          "model.positions": "learned",
                          "model.mlp": "swiglu"})
  derived = model_lib.build(config).par
  sp = param_lib.standard(config.model)
  assert (derived.logit_mult, derived.residual_mult) == (1.0, 1.0)
  assert derived.attention_scale == sp.attention_scale
  for key, rule in derived.rules:
    assert (rule.init_std, rule.lr, rule.eps, rule.weight_decay) == (
        sp.rule(key).init_std, 1.0, 1.0, 1.0), key


def test_zero_init_zeroes_the_readout_and_query():
  config = _wide(**{"model.zero_init": "readout_query"})
  model = model_lib.build(config)
  params = jax.jit(lambda: nn.unbox(model_lib.init_params(model, 0)))()
  assert float(jnp.abs(params["unembedding"]).max()) == 0.0
  assert float(jnp.abs(params["blocks"]["attn"]["q"]).max()) == 0.0
  assert float(jnp.abs(params["blocks"]["attn"]["k"]).max()) > 0.0


def test_the_train_step_applies_the_per_parameter_learning_rates():
  """The gpt-neox#1061 failure (μP configured, never active), checked on the
  compiled step: Adam's first update is lr·sign(g) per coordinate, so with
  no decay and no clipping |Δw| = lr·lr_p exactly where the gradient is not
  tiny: lr/4 for hidden weights at width ×4, lr for the readout."""
  config = _wide(**{"optimizer.weight_decay": 0.0, "optimizer.grad_clip": 0.0,
                    "schedule.name": "constant", "schedule.warmup_steps": 0,
                    "optimizer.peak_lr": 1e-2})
  validation.validate(config, 1)
  program = program_lib.build(config, sharding.make_mesh(config))
  batch = dummy_batch(config.batch_size, config.seq_len)
  batch["inputs"][:] = np.arange(config.seq_len) % 7
  batch["targets"][:] = (np.arange(config.seq_len) + 1) % 7
  batch["loss_mask"][:] = 1
  batch["positions"][:] = np.arange(config.seq_len)
  with program.context():
    state = program.init_state()
    before = jax.device_get(state["params"])
    state, _ = program.compile()(state, batch, program.hp)
    after = jax.device_get(state["params"])
  expected = {("blocks", "attn", "q"): 1e-2 / 4, ("blocks", "mlp", "wo"): 1e-2 / 4,
              ("unembedding",): 1e-2, ("blocks", "attn_norm", "scale"): 1e-2}
  for path, step in expected.items():
    b, a = before, after
    for k in path:
      b, a = b[k], a[k]
    delta = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    # |g| / (|g| + ε) < 1 only where a gradient is as small as ε.
    np.testing.assert_allclose(delta.max(), step, rtol=1e-4, err_msg=str(path))
    assert np.mean(delta > 0.9 * step) > 0.5, path


def _adam_reference(grads, lr, eps, b1=0.9, b2=0.95):
  """Plain numpy Adam with bias correction, one parameter, float64."""
  m = v = 0.0
  w, out = 0.0, []
  for t, g in enumerate(grads, 1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    out.append(w)
  return np.array(out)


def test_per_parameter_eps_equals_adam_with_that_eps():
  """Dividing a parameter's gradient by k before optax's Adam is Adam with
  ε·k: checked against a direct Adam at gradients comparable to ε."""
  rng = np.random.default_rng(0)
  grads = rng.normal(size=(6, 5)) * 1e-6
  hp = dict(b1=0.9, b2=0.95, eps=1e-6, weight_decay=0.0, grad_clip=np.inf)
  k = 8.0
  mult = dict(lr=dict(w=0.5), eps=dict(w=k), weight_decay=dict(w=1.0))
  tx = optim.optimizer(hp, 1e-3, dict(w=False), mult)
  with jax.enable_x64(True):
    params = dict(w=jnp.zeros(5, jnp.float64))
    state = tx.init(params)
    path = []
    for g in grads:
      updates, state = tx.update(dict(w=jnp.asarray(g)), state, params)
      params = optax.apply_updates(params, updates)
      path.append(np.asarray(params["w"]))
  for j in range(5):
    ref = _adam_reference(grads[:, j], 1e-3 * 0.5, 1e-6 * k)
    np.testing.assert_allclose(np.array(path)[:, j], ref, rtol=1e-9)


def test_all_ones_multipliers_are_optax_adamw_bit_for_bit():
  rng = np.random.default_rng(1)
  params = dict(a=jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
                b=jnp.asarray(rng.normal(size=3), jnp.float32))
  mask = dict(a=True, b=False)
  hp = {k: np.float32(v) for k, v in dict(
      b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0).items()}
  ones = {f: dict(a=1.0, b=1.0) for f in ("lr", "eps", "weight_decay")}
  outs = []
  for mult in (None, ones):
    tx = optim.optimizer(hp, jnp.float32(3e-3), mask, mult)
    p, s = params, tx.init(params)
    for i in range(4):
      g = jax.tree.map(lambda x: jnp.sin(x * (i + 1)), p)
      u, s = tx.update(g, s, p)
      p = optax.apply_updates(p, u)
    outs.append(p)
  for key in params:
    assert np.array_equal(np.asarray(outs[0][key]), np.asarray(outs[1][key]))


def test_weight_decay_per_step_is_width_independent_for_hidden_weights():
  """λ·m_N with lr/m_N: a hidden weight decays by lr·λ per step at any width
  (optax's decoupled decay multiplies λ by the learning rate)."""
  hp = {k: np.float32(v) for k, v in dict(
      b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=np.inf).items()}
  mult = dict(lr=dict(w=0.25), eps=dict(w=0.25), weight_decay=dict(w=4.0))
  tx = optim.optimizer(hp, jnp.float32(1e-2), dict(w=True), mult)
  params = dict(w=jnp.ones(3, jnp.float32))
  updates, _ = tx.update(dict(w=jnp.zeros(3)), tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["w"]), -1e-2 * 0.1, rtol=1e-6)


@pytest.mark.parametrize("overrides, field", [
    ({"model.parametrization": "mup"}, "model.base_d_model"),
    ({"model.parametrization": "completep", "model.base_d_model": 32},
     "model.base_n_layers"),
    ({"model.parametrization": "mup", "model.base_d_model": 24},
     "model.base_d_model"),  # n_kv_heads 2 · 24/32 = 1.5: not whole
    ({"model.parametrization": "mup", "model.base_d_model": 12},
     "model.base_d_model"),  # n_heads 4 · 12/32 = 1.5: not whole
    ({"model.parametrization": "umup"}, "model.parametrization"),
    ({"model.zero_init": "readout", "model.tie_embeddings": True},
     "model.zero_init"),
    ({"model.zero_init": "all"}, "model.zero_init"),
])
def test_bad_parametrization_configs_name_the_field(overrides, field):
  config = tiny_config(**overrides)
  with pytest.raises(config_lib.ConfigError) as info:
    validation.validate(config, 1)
  assert info.value.field == field
  assert f"config.{field}" in str(info.value)


def test_new_fields_at_their_defaults_keep_identities_and_sp_ignores_bases():
  base = tiny_config()
  before = identity.identity_hash(base, "h")
  sp_with_base = tiny_config(**{"model.base_d_model": 16,
                                "model.base_n_layers": 1})
  assert identity.identity_hash(sp_with_base, "h") == before
  mup = _wide("mup", 32)
  assert identity.identity_hash(mup, "h") != before
  # μP does not read base_n_layers; CompleteP does.
  assert identity.identity_hash(mup, "h") == identity.identity_hash(
      config_lib.with_overrides(mup, {"model.base_n_layers": 7}), "h")
  cp = _wide("completep", 32)
  assert identity.identity_hash(cp, "h") != identity.identity_hash(
      config_lib.with_overrides(cp, {"model.base_n_layers": 1}), "h")


def test_mup_train_step_lowers_for_an_abstract_mesh():
  """The optimizer state with multipliers is built from shapes alone."""
  config = _wide(**{"mesh.data": 2, "mesh.fsdp": 4, "batch_size": 16})
  validation.validate(config, 8)
  program = program_lib.build(config, sharding.abstract_mesh(config, 8))
  text = program.lower(platform="cpu").as_text()
  assert "stablehlo" in text
