"""Exact substring look-ups in the pretraining (train-split) documents.

The built-in tasks take every example from documents held out of
pretraining, and also drop an example whose text occurs verbatim in a
training document (a short function body such as ``return self._name`` can
appear in both), so no example's input was ever seen in pretraining.

:class:`TrainText` answers "is this text a substring of some training
document?" exactly, without scanning the corpus per query: in a text that
holds a newline, what follows its first newline must begin at a line start
of the document, so a sorted index of the bytes after every line start
gives the few places to compare; a text without a newline falls back to
``bytes.find`` over the documents.
"""

from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

_DOC_SEPARATOR = b"\0"  # never in Python source (the parser refuses it)
_KEY_BYTES = 64  # bytes after each line start kept in the sorted index
_MAX_CANDIDATES = 256  # more places than this to compare: scan instead


class TrainText:
  """Exact substring membership over a list of documents.

  Attributes:
    n_documents: documents indexed.
  """

  def __init__(self, documents: Sequence[bytes]):
    """Indexes the documents (well under a second for the 10 MB stdlib split).

    Args:
      documents: the training documents' bytes (e.g. ``corpus.train``).
    """
    self.n_documents = len(documents)
    self._text = _DOC_SEPARATOR.join(documents)
    newlines = np.flatnonzero(np.frombuffer(self._text, np.uint8) == 10)
    starts = [0] + (newlines + 1).tolist()
    keys = [self._text[o:o + _KEY_BYTES] for o in starts]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    self._keys = [keys[i] for i in order]
    self._starts = [starts[i] for i in order]

  def _line_starts_with(self, prefix: bytes) -> list[int] | None:
    """Line starts followed by ``prefix``; None when there are too many."""
    key = prefix[:_KEY_BYTES]
    lo = bisect.bisect_left(self._keys, key)
    if len(key) == _KEY_BYTES:
      hi = bisect.bisect_right(self._keys, key, lo)
    else:  # every key that starts with `key` sorts below its successor
      stem = key.rstrip(b"\xff")
      hi = (len(self._keys) if not stem else bisect.bisect_left(
          self._keys, stem[:-1] + bytes([stem[-1] + 1]), lo))
    if hi - lo > _MAX_CANDIDATES:
      return None
    return self._starts[lo:hi]

  def contains(self, text: str | bytes) -> bool:
    """Whether ``text`` occurs verbatim inside one training document.

    Args:
      text: str (UTF-8 encoded here) or bytes; must not contain NUL.

    Returns:
      True iff ``text`` is a substring of some document.

    Raises:
      ValueError: ``text`` contains a NUL byte (the document separator).
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if _DOC_SEPARATOR in data:
      raise ValueError("text contains a NUL byte; it cannot occur in Python "
                       "source and is the index's document separator")
    newline = data.find(b"\n")
    if newline < 0:
      return self._text.find(data) >= 0
    rest = data[newline + 1:]  # must begin at a line start of a document
    if not rest:
      return self._text.find(data) >= 0
    candidates = self._line_starts_with(rest)
    if candidates is None:  # a common short tail: scan instead
      return self._text.find(data) >= 0
    for line_start in candidates:
      start = line_start - newline - 1
      if start >= 0 and self._text.startswith(data, start):
        return True
    return False
