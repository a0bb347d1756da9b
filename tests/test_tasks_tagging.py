"""Tagging task: tokenize spans, their text form, extraction and chunking."""

import io
import tokenize

import pytest

from scaling.tasks import tagging

SOURCE = '''def f(x, *, y=0x1F):
    """Doc with if and 'quotes'.

    Second line \\n here.
    """
    # print the sum
    if x in y and not None:
        return print(x, 1.5e3, b'\\x00', r"in")
    return y  # trailing
'''


def _by_tokenize(text):
  """(label, string) of the labelled tokens, straight from tokenize."""
  import keyword
  out = []
  for t in tokenize.generate_tokens(io.StringIO(text).readline):
    if t.type == tokenize.NAME and keyword.iskeyword(t.string):
      out.append(("keyword", t.string))
    elif t.type in (tokenize.STRING, tokenize.NUMBER, tokenize.COMMENT):
      out.append(({tokenize.STRING: "string", tokenize.NUMBER: "number",
                   tokenize.COMMENT: "comment"}[t.type], t.string))
  return out


def test_source_spans_match_the_tokenize_module():
  spans = tagging.source_spans(SOURCE)
  got = [(label, SOURCE[s:e]) for label, s, e in spans]
  assert got == _by_tokenize(SOURCE)
  assert ("keyword", "None") in got and ("number", "0x1F") in got
  assert ("comment", "# print the sum") in got
  assert ("string", 'r"in"') in got
  # Names (print, x) and soft keywords are outside every span.
  assert not any(text in ("print", "x", "y") for _, text in got)
  assert all(e1 <= s2 for (_, _, e1), (_, s2, _) in zip(spans, spans[1:]))


def test_an_f_string_is_one_string_span_on_every_python():
  # Python >= 3.12 tokenizes f-strings into FSTRING_START ... FSTRING_END
  # with the expressions inside; the span is the whole literal either way.
  text = 'y = f"{x:{w}} and {\'if\'}" if x else 0\n'
  spans = tagging.source_spans(text)
  assert [(label, text[s:e]) for label, s, e in spans] == [
      ("string", 'f"{x:{w}} and {\'if\'}"'), ("keyword", "if"),
      ("keyword", "else"), ("number", "0")]


def test_escape_round_trip_keeps_one_line_per_span():
  for text in ['"""a\nb"""', "'\\\\n'", "x\r\ny", "\\", "\\\\n"]:
    assert "\n" not in tagging.escape(text)
    assert tagging.unescape(tagging.escape(text)) == text


def test_gold_target_round_trips_to_the_tokenizer_spans():
  spans = tagging.source_spans(SOURCE)
  target = tagging.encode_spans(SOURCE, spans)
  assert target.splitlines()[0] == "keyword def"
  placed, unplaced = tagging.extract_spans(target, SOURCE)
  assert placed == spans and unplaced == []


def test_extraction_respects_word_boundaries():
  text = "print(x in y)"
  placed, _ = tagging.extract_spans("keyword in", text)
  assert placed == [("keyword", 8, 10)]  # not the "in" inside "print"
  # Without the boundary rule the first "in" would be found (control).
  assert text.find("in") == 2
  placed, unplaced = tagging.extract_spans(
      "keyword in\nkeyword in\nnumber 7\nbogus x\nkeyword", text)
  assert placed == [("keyword", 8, 10)]
  assert unplaced == ["keyword", "number", tagging.INVALID_LABEL, "keyword"]


def test_iob_tags_over_characters():
  tags = tagging.iob_tags(6, [("keyword", 0, 2), ("number", 3, 4)])
  assert tags == ["B-keyword", "I-keyword", "O", "B-number", "O", "O"]


def test_chunks_respect_both_budgets_and_never_cut_a_token():
  text = SOURCE * 3
  kept, dropped = tagging.chunks(text, max_input_bytes=64,
                                 max_target_bytes=100)
  lines = text.split("\n")
  for line, chunk, spans in kept:
    assert len(chunk.encode()) <= 64
    assert len(tagging.encode_spans(chunk, spans).encode()) <= 100
    assert lines[line - 1].strip() == chunk.split("\n")[0].strip()
    placed, unplaced = tagging.extract_spans(
        tagging.encode_spans(chunk, spans), chunk)
    assert placed == spans and not unplaced
  # The 71-byte docstring of each copy fits no chunk: dropped, counted.
  assert dropped["too_long"] == 3
  covered = "".join(chunk for _, chunk, _ in kept)
  assert "Second line" not in covered
  # A bigger budget keeps the docstring.
  kept, _ = tagging.chunks(text, max_input_bytes=400, max_target_bytes=400)
  assert any("Second line" in chunk for _, chunk, _ in kept)


def test_chunks_raise_on_source_that_does_not_tokenize():
  with pytest.raises((tokenize.TokenError, SyntaxError)):
    tagging.chunks('x = """never closed\n', 100, 100)
