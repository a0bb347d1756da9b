"""One run's program, built once: model, sharded abstract state, jitted steps.

:func:`build` turns a config and a mesh into a :class:`Program`: the model,
the train state's shapes and shardings (from shapes alone, nothing
allocated), the example batch's shapes, the traced hyperparameters, the
jitted init, train step (explicit in/out shardings, donated state) and eval
step. Training (``scaling.train``), ``scaling check`` (``scaling.aot``), the
benchmarks and the tests all build through it, so what is checked is what
trains (DESIGN.md §2.4–2.5).

The mesh may be an ``AbstractMesh`` (no devices): :meth:`Program.lower` then
still works, so a step can be lowered, and with a compile-only device mesh
compiled, for devices that cannot execute (DESIGN.md §8).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from scaling import accounting
from scaling import loss
from scaling import model as model_lib
from scaling import optim
from scaling import parametrization
from scaling import schedules
from scaling import sharding
from scaling import step as step_lib
from scaling.data.packing import BATCH_DTYPES


@dataclasses.dataclass(frozen=True)
class Program:
  """Everything compiled for one run, built by :func:`build`.

  Attributes:
    config: the run config.
    mesh: the ``Mesh`` (or ``AbstractMesh``) the program is laid out on.
    model: the Transformer.
    hp: the run's traced hyperparameters (float32 numpy scalars).
    state_shardings: NamedShardings of the train state.
    abstract_state: the train state as ``ShapeDtypeStruct``s with shardings.
    abstract_batch: a global train batch as ``ShapeDtypeStruct``s [B, L].
    abstract_hp: ``hp`` as replicated ``ShapeDtypeStruct``s.
    train_step: jitted ``(state, batch, hp) -> (state, metrics)``, state
      donated.
    eval_step: jitted ``(params, batch) -> (nll_B, bytes_B, count_B)``.
  """

  config: Any
  mesh: Any
  model: model_lib.Transformer
  hp: dict
  state_shardings: dict
  abstract_state: dict
  abstract_batch: dict
  abstract_hp: dict
  train_step: Any
  eval_step: Any
  _init: Callable[[], dict]
  _from_params: Callable[[dict], dict]

  def context(self) -> contextlib.ExitStack:
    """The mesh and logical-axis-rule context every trace runs under."""
    return mesh_context(self.mesh)

  def lower(self, platform: str | None = None) -> jax.stages.Lowered:
    """The train step lowered for the abstract state, batch and hp.

    Args:
      platform: for an ``AbstractMesh``, the platform to lower for
        (``"cpu"``, ``"tpu"``, ...; default JAX's default backend); a
        concrete mesh lowers for its own devices.
    """
    args = (self.abstract_state, self.abstract_batch, self.abstract_hp)
    with self.context():
      if isinstance(self.mesh, jax.sharding.AbstractMesh):
        return self.train_step.trace(*args).lower(
            lowering_platforms=(platform or jax.default_backend(),))
      return self.train_step.lower(*args)

  def compile(self) -> jax.stages.Compiled:
    """The compiled train step; call it with concrete (state, batch, hp)."""
    lowered = self.lower()
    with self.context():
      return lowered.compile()

  def init_state(self) -> dict:
    """A fresh train state, born in its shardings (``config.train.seed``).

    The init runs once, so XLA:CPU compiles it without optimisation passes
    (``xla_backend_optimization_level`` 0): about half the compile time of
    a small model's init, and the values do not depend on it run to run.
    """
    with self.context():
      lowered = self._init.lower()
      platform = self.mesh.devices.flat[0].platform
      options = {"xla_backend_optimization_level": 0} if platform == "cpu" else None
      return lowered.compile(options)()

  def state_from_params(self, params) -> dict:
    """The train state of given parameters: a fresh optimizer state, step 0.

    Args:
      params: a parameter tree of ``abstract_state["params"]``'s structure
        (e.g. restored from another run's checkpoint).
    """
    with self.context():
      return self._from_params(params)


def mesh_context(mesh) -> contextlib.ExitStack:
  """Enters ``mesh`` (a ``Mesh`` or ``AbstractMesh``) and the logical-axis
  rules: what :meth:`Program.context` and the shape traces of :func:`build`
  run under, so that the platform compiled for (a TPU topology on a CPU
  host) is the one every trace sees."""
  stack = contextlib.ExitStack()
  if isinstance(mesh, jax.sharding.AbstractMesh):
    stack.enter_context(jax.sharding.use_abstract_mesh(mesh))
  else:
    stack.enter_context(jax.set_mesh(mesh))
  stack.enter_context(sharding.rules_context())
  return stack


def fingerprint(lowered: jax.stages.Lowered) -> str:
  """sha256 (16 hex digits) of a lowered program's StableHLO text."""
  return hashlib.sha256(lowered.as_text().encode()).hexdigest()[:16]


def abstract_batch(batch_size: int, seq_len: int, batch_sharding) -> dict:
  """A batch dict of ``ShapeDtypeStruct`` [batch_size, seq_len] (no arrays)."""
  shape = (batch_size, seq_len)
  return {k: jax.ShapeDtypeStruct(shape, dtype, sharding=batch_sharding)
          for k, dtype in BATCH_DTYPES.items()}


def _state_layout(model, mesh, seed: int, decay_embeddings: bool):
  """(init_fn, from_params_fn, state_shardings) from shapes alone."""
  with mesh_context(mesh):
    boxed = jax.eval_shape(lambda: model_lib.init_params(model, seed))
  param_shardings = sharding.logical_shardings(mesh, boxed)
  params_shape = jax.tree.map(
      lambda x: x.unbox(apply_constraint=False), boxed,
      is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  # The optimizer state's structure does not depend on hyperparameter values:
  # any placeholder builds it.
  placeholder = {k: 1.0 for k in optim.HP_KEYS}
  tx = optim.optimizer(
      placeholder, 0.0, optim.decay_mask(params_shape, decay_embeddings),
      parametrization.optimizer_multipliers(model.par, params_shape))
  opt_shape = jax.eval_shape(tx.init, params_shape)
  opt_shardings = optax.tree_map_params(
      tx, lambda _, s: s, opt_shape, param_shardings,
      transform_non_params=lambda _: sharding.replicated(mesh))
  shardings = dict(params=param_shardings, opt_state=opt_shardings,
                   step=sharding.replicated(mesh))

  def from_params(params):
    return dict(params=params, opt_state=tx.init(params),
                step=jnp.zeros((), jnp.int32))

  def init_fn():
    return from_params(nn.unbox(model_lib.init_params(model, seed)))

  return init_fn, from_params, shardings


def build(config, mesh) -> Program:
  """Builds the program of run ``config`` on ``mesh`` (nothing is allocated).

  Args:
    config: a validated run config.
    mesh: a ``jax.sharding.Mesh`` (``scaling.sharding.make_mesh``) or an
      ``AbstractMesh`` (``scaling.sharding.abstract_mesh``).

  Returns:
    The :class:`Program`.
  """
  model = model_lib.build(config)
  total = accounting.train_steps(config)
  hp = optim.hyperparams(config, total,
                         schedules.resolve_warmup(config.schedule, total))
  decay_embeddings = config.optimizer.decay_embeddings
  with sharding.rules_context():
    init_fn, from_params, shardings = _state_layout(
        model, mesh, config.train.seed, decay_embeddings)
  with mesh_context(mesh):
    shapes = jax.eval_shape(init_fn)
  abstract_state = jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes, shardings)
  batch_sharding = sharding.batch_sharding(mesh)
  batch_shardings = {k: batch_sharding for k in BATCH_DTYPES}
  rep = sharding.replicated(mesh)
  train_step = jax.jit(
      step_lib.make_train_step(model, config.schedule.name,
                               config.train.microbatches, decay_embeddings,
                               config.schedule.decay_shape),
      in_shardings=(shardings, batch_shardings, {k: rep for k in hp}),
      out_shardings=(shardings, None), donate_argnums=(0,))
  eval_step = jax.jit(
      lambda params, batch: loss.eval_sums(model, params, batch),
      in_shardings=(shardings["params"], batch_shardings))
  return Program(
      config=config, mesh=mesh, model=model, hp=hp, state_shardings=shardings,
      abstract_state=abstract_state,
      abstract_batch=abstract_batch(config.batch_size, config.seq_len,
                                    batch_sharding),
      abstract_hp={k: jax.ShapeDtypeStruct((), np.float32, sharding=rep)
                   for k in hp},
      train_step=train_step, eval_step=eval_step,
      _init=jax.jit(init_fn, out_shardings=shardings),
      _from_params=jax.jit(from_params, in_shardings=(shardings["params"],),
                           out_shardings=shardings))
