"""The experiment registry: names → families of runs (DESIGN.md §3).

A file of ``experiments/families/`` registers a builder::

    @registry.register("tiny", description="...", cost="...")
    def build():
      base = scaling.config.default_config()
      ...
      return registry.Family(base, runs, notes)

where ``runs`` is a list of :class:`Run` (a short name, the run's full config
and, for isoFLOP sweeps, its compute budget; a WSD decay branch also names
the stable run and step it starts from). The registry imports every module
of ``experiments.families``, so adding an experiment is adding a file.

A run's identity is ``<short-name>-<identity-hash>`` with the hash of
``scaling.identity.identity_hash(config, corpus_hash)``, the same hash the
trainer records in the run's ``config.json``: re-running a sweep finds its
runs again, and a changed config is a new run, never a silent overwrite.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from typing import Any, Callable

import ml_collections

from experiments import branches
from scaling import accounting
from scaling import identity as identity_lib
from scaling import validation
from scaling.config import ConfigError
from scaling.data import sources

_SHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+_]*$")


class UnknownExperiment(LookupError):
  """No experiment of that name; the message lists the known names."""

  def __init__(self, name: str, known: list[str]):
    self.name = name
    self.known = known
    super().__init__(
        f"unknown experiment '{name}'; known experiments: {', '.join(known)} "
        "(`scaling experiments` lists them with their size and cost)")

  def __str__(self) -> str:  # LookupError would quote the message
    return self.args[0]


@dataclasses.dataclass
class Run:
  """One run of an experiment.

  Attributes:
    short_name: readable, filesystem-safe name (letters, digits, ``._=+_``;
      no ``-``, which separates it from the identity hash).
    config: the run's full config (``scaling.config.default_config()`` schema).
    budget: the isoFLOP budget C in the exact ``flops`` count, or None.
    tags: extra values describing the run (e.g. shape, epochs), written to
      the results table as columns.
    init_from: for a WSD decay branch, (short name of the stable run of the
      same experiment, step): the run starts from that run's checkpoint at
      that step (``scaling.train.train(init_from=...)``), so the sweep
      trains the stable run first and this run trains only its steps after
      the branch point. Not part of the identity: a branch is the run its
      config describes (whole length, warmup, decay), trained more cheaply,
      so it has the identity of that run trained from scratch.
  """

  short_name: str
  config: ml_collections.ConfigDict
  budget: float | None = None
  tags: dict[str, Any] = dataclasses.field(default_factory=dict)
  init_from: tuple[str, int] | None = None

  def __post_init__(self):
    if not _SHORT_NAME.match(self.short_name):
      raise ValueError(
          f"run short name '{self.short_name}' must match "
          f"{_SHORT_NAME.pattern} (no '-': it separates the identity hash)")

  @property
  def steps(self) -> int:
    """Optimizer steps of the whole run (``accounting.train_steps``)."""
    return accounting.train_steps(self.config)

  @property
  def branch_step(self) -> int:
    """The step this run starts from: its branch point, or 0."""
    return self.init_from[1] if self.init_from else 0

  @property
  def flops_per_step(self) -> float:
    """Training FLOPs of one optimizer step (exact ``flops`` count)."""
    return accounting.flops_per_step(self.config)["flops"]

  @property
  def flops(self) -> float:
    """Training FLOPs this run itself costs, in the exact ``flops`` count:
    the whole run, or for a branch only its steps after the branch point
    (the shared prefix is the stable run's)."""
    return (self.steps - self.branch_step) * self.flops_per_step

  @property
  def flops_endpoint(self) -> float:
    """Training FLOPs of the whole run from step 0 (a branch's prefix
    included): the compute its final loss stands for."""
    return self.steps * self.flops_per_step

  def name(self) -> str:
    """``<short-name>-<identity-hash>`` (hash includes the corpus hash).

    Raises:
      ConfigError: if the corpus named by ``config.data`` cannot be loaded.
    """
    return f"{self.short_name}-{identity(self.config)}"


@dataclasses.dataclass
class Family:
  """What an experiment's builder returns.

  Attributes:
    base: the base config the runs were generated from.
    runs: the runs, in the order the runner trains them.
    notes: generator notes (e.g. runs dropped for too few steps).
  """

  base: ml_collections.ConfigDict
  runs: list[Run]
  notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Experiment:
  """A registered family of runs.

  Attributes:
    name: registry name.
    description: one line.
    cost: the expected cost (where it is meant to run, how long).
    base: the base config the runs were generated from.
    runs: the runs, in the order the runner trains them.
    notes: generator notes (e.g. runs dropped for too few steps).
    analyze: the experiment's own analysis (see :func:`register`), or None.
    downstream: its stage after training (see :func:`register`), or None.
  """

  name: str
  description: str
  cost: str
  base: ml_collections.ConfigDict
  runs: list[Run]
  notes: list[str] = dataclasses.field(default_factory=list)
  analyze: Callable[[str, str], dict] | None = None
  downstream: Callable[..., None] | None = None

  @property
  def total_flops(self) -> float:
    """Sum of the runs' training FLOPs (exact ``flops`` count)."""
    return float(sum(r.flops for r in self.runs))

  def check(self) -> None:
    """Validates every run config, the short names and the branches.

    Raises:
      ConfigError: a run's config is invalid (the message names the run).
      ValueError: two runs share a short name, there are no runs, or a
        branch does not fit its stable run (``branches.check_branch``).
    """
    if not self.runs:
      raise ValueError(f"experiment '{self.name}' has no runs")
    seen = {}
    for run in self.runs:
      if run.short_name in seen:
        raise ValueError(
            f"experiment '{self.name}': two runs are named "
            f"'{run.short_name}'; give each run its own short name")
      try:
        validation.validate(run.config)
      except ConfigError as e:
        raise ConfigError(
            e.field, f"(experiment '{self.name}', run '{run.short_name}') "
            f"{e}") from e
      if run.init_from is not None:
        source = seen.get(run.init_from[0])
        if source is None:
          raise ValueError(
              f"experiment '{self.name}', run '{run.short_name}': its "
              f"init_from names '{run.init_from[0]}', which is not a run "
              "listed before it; list the stable run first")
        branches.check_branch(run, source, self.name)
      seen[run.short_name] = run

  def source_of(self, run: Run) -> Run | None:
    """The stable run a branch starts from (None for other runs)."""
    if run.init_from is None:
      return None
    return next(r for r in self.runs if r.short_name == run.init_from[0])


@dataclasses.dataclass(frozen=True)
class _Entry:
  name: str
  description: str
  cost: str
  builder: Callable[[], tuple]
  analyze: Callable[[str, str], dict] | None = None
  downstream: Callable[..., None] | None = None


_REGISTRY: dict[str, _Entry] = {}
_DISCOVERED = False


def register(name: str, description: str, cost: str = "",
             analyze: Callable[[str, str], dict] | None = None,
             downstream: Callable[..., None] | None = None):
  """Decorator registering ``builder() -> Family`` as ``name``.

  ``analyze(sweep_dir, out_dir) -> dict`` replaces the default analysis
  (``analysis.report.analyze``) for experiments whose runs must not be fitted
  as one family (e.g. different objectives).

  ``downstream(experiment, sweep_dir, claim, out)`` is a stage every sweep
  worker runs once all of the experiment's runs are finished, before the
  tables and the analysis: fine-tunes of the runs' checkpoints
  (``experiments.downstream``), each claimed with ``claim(name)`` (a
  ``scaling.claims.Claim``) so that every job runs once across workers.

  Raises:
    ValueError: if ``name`` is already registered by another builder.
  """

  def decorate(builder):
    previous = _REGISTRY.get(name)
    if previous is not None and (
        (previous.builder.__module__, previous.builder.__qualname__)
        != (builder.__module__, builder.__qualname__)):
      raise ValueError(f"experiment '{name}' is already registered by "
                       f"{previous.builder.__module__}")
    _REGISTRY[name] = _Entry(name, description, cost, builder, analyze,
                             downstream)
    return builder

  return decorate


def _discover() -> None:
  """Imports every module of ``experiments.families`` (once)."""
  global _DISCOVERED
  if _DISCOVERED:
    return
  package = importlib.import_module("experiments.families")
  for info in pkgutil.iter_modules(package.__path__):
    if not info.name.startswith("_"):
      importlib.import_module(f"experiments.families.{info.name}")
  _DISCOVERED = True


def list_experiments() -> list[str]:
  """Sorted names of the registered experiments."""
  _discover()
  return sorted(_REGISTRY)


def describe(name: str) -> tuple[str, str]:
  """(description, cost) of a registered experiment without building it.

  Raises:
    UnknownExperiment: for an unregistered name.
  """
  _discover()
  if name not in _REGISTRY:
    raise UnknownExperiment(name, list_experiments())
  entry = _REGISTRY[name]
  return entry.description, entry.cost


def lookup(name: str) -> Experiment:
  """Builds and checks the experiment registered as ``name``.

  Raises:
    UnknownExperiment: for an unregistered name (lists the known names).
    ConfigError, ValueError: if the builder produces an invalid run.
  """
  _discover()
  if name not in _REGISTRY:
    raise UnknownExperiment(name, list_experiments())
  entry = _REGISTRY[name]
  family = entry.builder()
  if not isinstance(family, Family):
    raise TypeError(f"experiment '{name}': its builder must return a "
                    f"registry.Family, not {type(family).__name__}")
  experiment = Experiment(name=name, description=entry.description,
                          cost=entry.cost, base=family.base,
                          runs=list(family.runs), notes=list(family.notes),
                          analyze=entry.analyze, downstream=entry.downstream)
  experiment.check()
  return experiment


def corpus_hash(data_cfg) -> str:
  """Content hash of the corpus named by ``data_cfg`` (loaded once per
  process, ``scaling.data.sources.load_corpus``).

  Raises:
    ConfigError: as ``scaling.data.sources.load_corpus``.
  """
  return sources.load_corpus(data_cfg).corpus_hash


def identity(config: ml_collections.ConfigDict) -> str:
  """The run identity hash, as the trainer computes it (with the corpus hash)."""
  return identity_lib.identity_hash(config, corpus_hash(config.data))
