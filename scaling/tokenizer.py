"""Byte-level tokenizer with the id layout of DESIGN.md §4.

Ids, in order:

* ``0 … 255``: the bytes of UTF-8 text;
* ``PAD, BOS, EOS, MASK``: 256 … 259;
* the fill-in-the-middle tokens ``PRE, SUF, MID``: 260 … 262 (Bavarian et al. 2022);
* the UL2 paradigm (mode) tokens ``R, X, S``: 263 … 265 (Tay et al. 2022);
* ``n_sentinels`` sentinels (T5, Raffel et al. 2020), sentinel 0 being the
  highest real id and sentinel i = ``FIRST_SENTINEL + n_sentinels - 1 - i``;
* padding ids up to a multiple of 128 (``vocab_size``); they are never produced.

Special tokens count zero bytes in bits per byte.
"""

from __future__ import annotations

import dataclasses

import numpy as np

N_BYTES = 256
PAD = 256
BOS = 257
EOS = 258
MASK = 259
PRE = 260
SUF = 261
MID = 262
MODE_R = 263
MODE_X = 264
MODE_S = 265
FIRST_SENTINEL = 266  # lowest id of the sentinel block
VOCAB_MULTIPLE = 128


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
  """UTF-8 byte tokenizer.

  Attributes:
    n_sentinels: number of T5 sentinel ids (span corruption, UL2).
  """

  n_sentinels: int = 128

  def __post_init__(self):
    if self.n_sentinels < 0:
      raise ValueError(
          f"tokenizer.n_sentinels must be >= 0, got {self.n_sentinels}")

  @property
  def n_real(self) -> int:
    """Number of ids the tokenizer can produce (bytes + specials + sentinels)."""
    return FIRST_SENTINEL + self.n_sentinels

  @property
  def vocab_size(self) -> int:
    """Real ids padded up to a multiple of 128 (embedding/logit rows)."""
    return -(-self.n_real // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

  def sentinel(self, i: int) -> int:
    """Id of sentinel ``i`` (0-based); sentinel 0 is the highest real id.

    Raises:
      ValueError: if ``i`` is not in ``[0, n_sentinels)``.
    """
    if not 0 <= i < self.n_sentinels:
      raise ValueError(
          f"sentinel {i} out of range: the tokenizer has {self.n_sentinels} "
          "sentinels (raise tokenizer.n_sentinels or shorten seq_len)")
    return self.n_real - 1 - i

  def is_sentinel(self, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    return (ids >= FIRST_SENTINEL) & (ids < self.n_real)

  def encode(self, text: str | bytes) -> np.ndarray:
    """Text → int32 ids of shape [n_bytes] (no BOS/EOS added)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return np.frombuffer(data, dtype=np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    """Ids → text; special ids are dropped, invalid UTF-8 is replaced."""
    ids = np.asarray(ids)
    return bytes(ids[ids < N_BYTES].astype(np.uint8)).decode(
        "utf-8", errors="replace")


def byte_count(ids: np.ndarray) -> np.ndarray:
  """Bytes each id stands for: 1 for a byte id, 0 for every special id."""
  return (np.asarray(ids) < N_BYTES).astype(np.int32)
