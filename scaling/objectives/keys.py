"""Per-example keys: ``jax.random.fold_in(key, global_example_index)`` in numpy.

Every objective draws its randomness for one example from
``fold_in(key, g)`` (DESIGN.md §4, Objectives), ``g`` the global example index,
so resuming or resharding a job regenerates the same examples. The data
pipeline runs on the host and builds one example at a time, so the fold is
computed here in numpy: :func:`fold_in` is bit-for-bit jax's default
(threefry2x32) ``jax.random.fold_in`` (Salmon et al. 2011, "Parallel random
numbers: as easy as 1, 2, 3", Threefry-2x32 with 20 rounds), checked against
jax in ``tests/test_objectives.py``; it needs no device and no dispatch and
runs on arrays of indices at once.

From the folded key ``(w0, w1)`` (two uint32 words) an example takes

* its discrete choice made before its length is known (a UL2 denoiser, a FIM
  layout) from ``u0 = w0 / 2**32`` and ``u1 = w1 / 2**32``
  (:func:`key_uniforms`), vectorised so the data plan can draw them for a
  whole epoch;
* everything else from ``numpy.random.default_rng([w0, w1])``
  (:func:`example_rng`). SeedSequence and PCG64 are fixed algorithms, so an
  example is bit-for-bit reproducible on any machine with the same numpy;
  numpy does not promise that ``Generator`` methods keep their streams
  across versions, so reproducing examples across numpy upgrades is not
  guaranteed (the mode draws above do not depend on numpy).
"""

from __future__ import annotations

import jax
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)  # Threefry key-schedule constant
_MAX_INDEX = 2**32  # fold_in data is a uint32


def threefry2x32(k0, k1, x0, x1) -> tuple[np.ndarray, np.ndarray]:
  """Threefry-2x32, 20 rounds, on uint32 arrays (as ``jax.random`` uses it).

  Args:
    k0, k1: the key words (uint32 scalars or arrays broadcastable to x).
    x0, x1: the two counter words (uint32 arrays of one shape).

  Returns:
    The two output words, uint32 arrays of x's shape.
  """
  k0 = np.asarray(k0, np.uint32)
  k1 = np.asarray(k1, np.uint32)
  x0 = np.array(x0, np.uint32, ndmin=1)
  x1 = np.array(x1, np.uint32, ndmin=1)
  ks = (k0, k1, k0 ^ k1 ^ _PARITY)
  with np.errstate(over="ignore"):
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
      for r in _ROTATIONS[i % 2]:
        x0 = x0 + x1
        x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
        x1 = x1 ^ x0
      x0 = x0 + ks[(i + 1) % 3]
      x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x0, x1


def as_key(key) -> np.ndarray:
  """Normalises a key to its raw data: uint32 [2].

  Args:
    key: an int seed (the data of ``jax.random.PRNGKey(seed)``, i.e.
      ``[0, seed]``, for ``0 <= seed < 2**32``), a raw threefry key (jax or
      numpy, shape [2]) or a typed jax key (``jax.random.key``).

  Raises:
    ValueError: a negative or too large seed, or key data that is not two
      uint32 words (e.g. a non-threefry PRNG implementation).
  """
  if isinstance(key, (int, np.integer)):
    if not 0 <= int(key) < _MAX_INDEX:
      raise ValueError(f"seed {key} must be in [0, 2**32)")
    return np.array([0, int(key)], np.uint32)
  dtype = getattr(key, "dtype", None)
  if dtype is not None and "key<" in str(dtype):  # typed jax key
    key = jax.random.key_data(key)
  data = np.asarray(key)
  if data.shape != (2,) or data.dtype != np.uint32:
    raise ValueError(
        f"expected a threefry key (uint32 [2]), got {data.dtype} {data.shape}")
  return data


def fold_in(key, data) -> np.ndarray:
  """``jax.random.fold_in(key, data)`` for threefry keys, vectorised.

  Equals ``threefry_2x32(key, [0, data])`` as in jax's ``threefry_fold_in``.

  Args:
    key: anything :func:`as_key` accepts.
    data: int or int array, each in ``[0, 2**32)`` (a global example index).

  Returns:
    uint32 [2] for scalar ``data``, else uint32 [..., 2].

  Raises:
    ValueError: ``data`` outside ``[0, 2**32)``.
  """
  k = as_key(key)
  d = np.asarray(data, dtype=np.int64)
  if d.size and (d.min() < 0 or d.max() >= _MAX_INDEX):
    raise ValueError(
        f"example index must be in [0, 2**32), got range "
        f"[{d.min()}, {d.max()}]")
  y0, y1 = threefry2x32(k[0], k[1], np.zeros(d.shape, np.uint32),
                        d.astype(np.uint32))
  out = np.stack([y0, y1], axis=-1)
  return out.reshape(d.shape + (2,))


def key_uniforms(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The two uniforms in [0, 1) an example draws its mode from.

  Args:
    words: folded keys, uint32 [..., 2].

  Returns:
    ``(u0, u1)``, float64 [...]: ``w0 / 2**32`` and ``w1 / 2**32``.
  """
  words = np.asarray(words, np.uint32)
  return words[..., 0] / 2.0**32, words[..., 1] / 2.0**32


def example_rng(words: np.ndarray) -> np.random.Generator:
  """The numpy generator of one example, seeded by its folded key [2]."""
  words = np.asarray(words, np.uint32)
  return np.random.default_rng([int(words[0]), int(words[1])])
