"""JAX's persistent compilation cache for sweeps, and counts of compiles.

Runs of a sweep that differ only in traced hyperparameters share one
executable; the runner reports how many compiles each run really did.
"""

from __future__ import annotations

import os

import jax
from jax.experimental.compilation_cache import compilation_cache

_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_COMPILE_STATS = dict(backend_compiles=0, backend_seconds=0.0, cache_hits=0)
_LISTENING = False


def _on_duration(event: str, duration: float, **_) -> None:
  if event == _BACKEND_COMPILE_EVENT:
    _COMPILE_STATS["backend_compiles"] += 1
    _COMPILE_STATS["backend_seconds"] += duration


def _on_event(event: str, **_) -> None:
  if event == _CACHE_HIT_EVENT:
    _COMPILE_STATS["cache_hits"] += 1


def compile_stats() -> dict[str, float]:
  """Process-wide counts since the runner started listening.

  ``xla_compiles`` = XLA compilations not served by the persistent cache;
  ``cache_hits`` = executables loaded from it; ``backend_seconds`` = time in
  both (jax.monitoring events).
  """
  stats = dict(_COMPILE_STATS)
  stats["xla_compiles"] = stats["backend_compiles"] - stats["cache_hits"]
  return stats


def enable_compile_cache(cache_dir: str) -> str:
  """Turns on JAX's persistent compilation cache in ``cache_dir``.

  Every executable is cached (no minimum compile time or size), so runs that
  differ only in traced hyperparameters (learning rate, β2, schedule
  lengths, seeds of the data) compile once. Also starts counting compiles
  (:func:`compile_stats`).

  Returns:
    The cache directory in use.
  """
  global _LISTENING
  cache_dir = os.fspath(cache_dir)
  os.makedirs(cache_dir, exist_ok=True)
  if jax.config.jax_compilation_cache_dir != cache_dir:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    compilation_cache.reset_cache()
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  if not _LISTENING:
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)
    _LISTENING = True
  return cache_dir
