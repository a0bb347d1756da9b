"""The tagging task (the NER analogue): ``tokenize`` spans of Python source.

Labels (:data:`LABELS`), from the standard :mod:`tokenize` module's token
types, four span types in the way named entities are a minority of a
sentence's words:

* ``keyword``: a NAME token that :func:`keyword.iskeyword` accepts (hard
  keywords, ``True``/``False``/``None`` included; soft keywords such as
  ``match`` depend on context and stay names);
* ``string``: a STRING token (on Python >= 3.12 an f-string arrives as
  FSTRING_START … FSTRING_END and is merged back into one span);
* ``number``: a NUMBER token;
* ``comment``: a COMMENT token (``#`` to the end of the line).

Names, operators and whitespace are outside every span: tagging them too
would make the target a copy of the input.

Text-to-text form. The input is a chunk of whole lines of a held-out
document; the target lists the chunk's spans in order, one line each,
``label text`` (one space), lines joined by ``\\n``; inside ``text`` a
backslash, newline and carriage return are written ``\\\\``, ``\\n`` and
``\\r`` so a multi-line string stays on one line::

  keyword def
  string 'a\\nb'
  comment # see below

Span extraction from a (generated) target, :func:`extract_spans`: each
well-formed line is placed at the first occurrence of its text in the input
at or after the end of the previous placed span, where a text starting or
ending with a word character must not touch another word character there
(so ``in`` is not found inside ``print``). On a gold target this recovers
the spans exactly (the text between two spans holds only names, operators
and whitespace, where no keyword, number, string or comment can occur). A
line that cannot be placed, or whose label is not in :data:`LABELS`, is a
predicted span with no place: a false positive.

Scoring (:func:`scaling.tasks.metrics.span_f1`): IOB2 tags over the input's
*characters* (``B-string``, ``I-string``, ``O``), span-level F1 by seqeval
in strict IOB2 mode, with every unplaced predicted span added as one extra
position tagged ``B-<label>`` in the prediction and ``O`` in the gold (a
false positive in seqeval's count).

Chunks come from tokenizing each whole document once (so a chunk's labels
are the document's true tokens); a chunk never cuts a token, and grows line
by line while its input and its target both stay within their byte budgets.
A run of lines that alone exceeds a budget (a long docstring) is dropped and
counted; a chunk with no span is dropped and counted.
"""

from __future__ import annotations

import bisect
import io
import keyword
import re
import tokenize
from typing import Iterator, Sequence

LABELS = ("keyword", "string", "number", "comment")
INVALID_LABEL = "invalid"  # type of a predicted line whose label is unknown
_WORD = re.compile(r"\w")
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}

Span = tuple[str, int, int]  # (label, start, end): characters, end exclusive


def escape(text: str) -> str:
  """A span's text on one line: backslash, newline, CR escaped."""
  return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def unescape(text: str) -> str:
  """Inverse of :func:`escape`; an unknown escape ``\\x`` stays as is."""
  out, i = [], 0
  while i < len(text):
    c = text[i]
    if c == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
      out.append(_UNESCAPES[text[i + 1]])
      i += 2
    else:
      out.append(c)
      i += 1
  return "".join(out)


def encode_spans(text: str, spans: Sequence[Span]) -> str:
  """A tagging example's target: ``label text`` lines (module docstring)."""
  return "\n".join(f"{label} {escape(text[s:e])}" for label, s, e in spans)


def _line_starts(text: str) -> list[int]:
  starts = [0]
  for line in text.split("\n")[:-1]:
    starts.append(starts[-1] + len(line) + 1)
  return starts


def source_spans(text: str) -> list[Span]:
  """The labelled spans of Python source, from :mod:`tokenize`.

  Args:
    text: Python source.

  Returns:
    Spans ``(label, start, end)`` in character offsets of ``text``, in
    order, non-overlapping.

  Raises:
    tokenize.TokenError, SyntaxError: ``text`` does not tokenize.
  """
  starts = _line_starts(text)
  fstring_start = {getattr(tokenize, n) for n in ("FSTRING_START",
                                                  "TSTRING_START")
                   if hasattr(tokenize, n)}
  fstring_end = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END")
                 if hasattr(tokenize, n)}
  spans, depth, open_at = [], 0, 0
  for t in tokenize.generate_tokens(io.StringIO(text).readline):
    start = starts[t.start[0] - 1] + t.start[1]
    end = starts[t.end[0] - 1] + t.end[1]
    if t.type in fstring_start:
      if depth == 0:
        open_at = start
      depth += 1
      continue
    if t.type in fstring_end:
      depth -= 1
      if depth == 0:
        spans.append(("string", open_at, end))
      continue
    if depth:
      continue  # inside an f-string: part of its span
    if t.type == tokenize.NAME and keyword.iskeyword(t.string):
      spans.append(("keyword", start, end))
    elif t.type == tokenize.STRING:
      spans.append(("string", start, end))
    elif t.type == tokenize.NUMBER:
      spans.append(("number", start, end))
    elif t.type == tokenize.COMMENT:
      spans.append(("comment", start, end))
  return spans


def _fits_at(text: str, piece: str, i: int) -> bool:
  if _WORD.match(piece[0]) and i > 0 and _WORD.match(text[i - 1]):
    return False
  j = i + len(piece)
  if _WORD.match(piece[-1]) and j < len(text) and _WORD.match(text[j]):
    return False
  return True


def extract_spans(target: str, text: str) -> tuple[list[Span], list[str]]:
  """Spans of a (generated) tagging target, placed in the input text.

  Args:
    target: ``label text`` lines (see the module docstring); empty lines are
      ignored.
    text: the example's input.

  Returns:
    ``(placed, unplaced)``: placed spans ``(label, start, end)`` in input
    character offsets, in order; and the labels of the predicted spans that
    could not be placed (unknown labels as :data:`INVALID_LABEL`).
  """
  placed, unplaced, cursor = [], [], 0
  for line in target.split("\n"):
    if not line.strip():
      continue
    label, sep, body = line.partition(" ")
    piece = unescape(body)
    if label not in LABELS or not sep or not piece:
      unplaced.append(label if label in LABELS else INVALID_LABEL)
      continue
    i = text.find(piece, cursor)
    while i >= 0 and not _fits_at(text, piece, i):
      i = text.find(piece, i + 1)
    if i < 0:
      unplaced.append(label)
      continue
    placed.append((label, i, i + len(piece)))
    cursor = i + len(piece)
  return placed, unplaced


def iob_tags(length: int, spans: Sequence[Span]) -> list[str]:
  """IOB2 tags over ``length`` characters: ``B-label``, ``I-label``, ``O``."""
  tags = ["O"] * length
  for label, s, e in spans:
    tags[s] = f"B-{label}"
    for k in range(s + 1, e):
      tags[k] = f"I-{label}"
  return tags


def chunks(text: str, max_input_bytes: int, max_target_bytes: int
           ) -> tuple[list[tuple[int, str, list[Span]]], dict[str, int]]:
  """Cuts a document into tagging chunks (see the module docstring).

  The document is tokenized once; its lines are grouped into *blocks*, the
  shortest runs of whole lines that no span crosses; chunks are runs of
  consecutive blocks, grown greedily while the chunk's input and target
  both fit their budgets. Newlines at a chunk's two ends are stripped.

  Args:
    text: one document's source.
    max_input_bytes: most UTF-8 bytes of a chunk.
    max_target_bytes: most UTF-8 bytes of its encoded target.

  Returns:
    ``(kept, dropped)``: ``kept`` lists ``(line, chunk, spans)`` with
    ``line`` the chunk's 1-based first line and ``spans`` relative to
    ``chunk``; ``dropped`` counts ``too_long`` blocks (alone over a budget)
    and ``no_span`` chunks.

  Raises:
    tokenize.TokenError, SyntaxError: the document does not tokenize.
  """
  spans = source_spans(text)
  starts = _line_starts(text)
  blocked = set()  # line starts that a span runs across
  for _, s, e in spans:
    blocked.update(range(bisect.bisect_right(starts, s),
                         bisect.bisect_left(starts, e)))
  cuts = [k for k in range(len(starts)) if k not in blocked]
  edges = [starts[k] for k in cuts] + [len(text)]
  blocks = []  # (start, end, input bytes, target line bytes, spans)
  j = 0
  for a, b in zip(edges[:-1], edges[1:]):
    inner = []
    while j < len(spans) and spans[j][1] < b:
      inner.append(spans[j])
      j += 1
    line_bytes = sum(len(f"{lab} {escape(text[s:e])}".encode("utf-8"))
                     for lab, s, e in inner)
    blocks.append((a, b, len(text[a:b].encode("utf-8")), line_bytes, inner))

  kept, dropped = [], {"too_long": 0, "no_span": 0}

  def emit(group):
    a, b = group[0][0], group[-1][1]
    piece = text[a:b]
    lead = len(piece) - len(piece.lstrip("\n"))
    inner = [(lab, s - a - lead, e - a - lead)
             for blk in group for lab, s, e in blk[4]]
    if inner:
      kept.append((text.count("\n", 0, a + lead) + 1, piece.strip("\n"),
                   inner))
    else:
      dropped["no_span"] += 1

  group, in_bytes, tgt_bytes, n_spans = [], 0, 0, 0
  for blk in blocks:
    alone_target = blk[3] + max(len(blk[4]) - 1, 0)
    if blk[2] > max_input_bytes or alone_target > max_target_bytes:
      dropped["too_long"] += 1
      if group:
        emit(group)
      group, in_bytes, tgt_bytes, n_spans = [], 0, 0, 0
      continue
    new_spans = n_spans + len(blk[4])
    new_target = tgt_bytes + blk[3] + max(new_spans - 1, 0)
    if group and (in_bytes + blk[2] > max_input_bytes or
                  new_target > max_target_bytes):
      emit(group)
      group, in_bytes, tgt_bytes, n_spans = [], 0, 0, 0
      new_spans = len(blk[4])
    group.append(blk)
    in_bytes += blk[2]
    tgt_bytes += blk[3]
    n_spans = new_spans
  if group:
    emit(group)
  return kept, dropped
