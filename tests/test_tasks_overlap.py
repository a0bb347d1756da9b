"""TrainText: exact substring look-ups agree with a plain scan."""

import numpy as np
import pytest

from scaling.tasks.overlap import TrainText


def _docs(rng, n_docs, vocab):
  """Documents of lines drawn from a small vocabulary (many repeats)."""
  return ["\n".join(rng.choice(vocab) for _ in range(rng.integers(1, 40))
                    ).encode() + (b"\n" if rng.random() < 0.5 else b"")
          for _ in range(n_docs)]


def test_contains_agrees_with_find_on_random_queries():
  rng = np.random.default_rng(0)
  vocab = ["", "    return x", "def f(x):", "    if x:", "x = 1",
           "        pass", "# c", "y"]
  docs = _docs(rng, 60, vocab)
  index = TrainText(docs)
  other = _docs(rng, 60, vocab + ["z = 2", "    return y"])
  hits = 0
  for source in (docs, other):
    for _ in range(1500):
      d = source[rng.integers(len(source))]
      i, n = rng.integers(len(d) + 1), rng.integers(1, 120)
      query = d[i:i + n]
      if not query:
        continue
      expected = any(query in doc for doc in docs)
      assert index.contains(query) == expected, query
      hits += expected
  assert 500 < hits < 2900  # both answers were exercised


def test_contains_str_and_refuses_nul():
  index = TrainText([b"alpha\nbeta\ngamma\n", "naïve\n".encode()])
  assert index.contains("ha\nbeta\nga") and index.contains("naïve")
  assert not index.contains("beta\nalpha")
  # Text across two documents is in neither (they are not concatenated).
  index = TrainText([b"x = 1\nab", b"cd\ny = 2"])
  assert index.contains(b"1\nab") and not index.contains(b"abcd")
  assert not index.contains(b"ab\ncd")
  with pytest.raises(ValueError, match="NUL"):
    index.contains(b"a\0b")
