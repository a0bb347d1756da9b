"""The built-in tasks, built once from this interpreter's stdlib corpus."""

import ast
import collections
import dataclasses
import json
import platform

import pytest

from scaling.config import default_config
from scaling.data.sources import load_corpus
from scaling.tasks import builtin, build_builtin_tasks, build_task, metrics
from scaling.tasks import tagging, task_rows
from scaling.tasks.overlap import TrainText
from scaling.tasks.task import SPLITS
from tests.conftest import run_subprocess

SEQ_LEN = 512


@pytest.fixture(scope="module")
def corpus():
  return load_corpus(default_config().data)


@pytest.fixture(scope="module")
def tasks(corpus):
  return build_builtin_tasks(corpus, seq_len=SEQ_LEN)


def _examples(task):
  return [e for split in SPLITS for e in task.splits[split]]


def _leaks(task, corpus):
  """Examples with a source outside the validation split, or none at all."""
  val, train = set(corpus.val_names), set(corpus.train_names)
  return [e.id for e in _examples(task)
          if not e.sources or not set(e.sources) <= val
          or set(e.sources) & train]


def test_kinds_sizes_and_provenance(tasks, corpus):
  kinds = {name: t.kind for name, t in tasks.items()}
  assert kinds == dict(stdlib_package="classification",
                       stdlib_tokens="tagging", stdlib_docstring="generation")
  for t in tasks.values():
    assert all(n > 0 for n in t.sizes().values()), t.sizes()
    p = t.provenance
    assert p["python_version"] == platform.python_version()
    assert p["corpus_hash"] == corpus.corpus_hash
    assert p["params"]["seq_len"] == SEQ_LEN
    assert p["sizes"] == t.sizes()
    assert len(t.content_hash) == 64
    json.dumps(t.summary())  # JSON-able


def test_every_example_comes_from_held_out_documents(tasks, corpus):
  for t in tasks.values():
    assert _leaks(t, corpus) == [], t.name
  # Negative control: with the split's sides swapped every example leaks.
  swapped = dataclasses.replace(corpus, train_names=corpus.val_names,
                                val_names=corpus.train_names)
  t = tasks["stdlib_package"]
  assert len(_leaks(t, swapped)) == len(_examples(t))


def test_no_input_occurs_in_a_training_document(tasks, corpus):
  index = TrainText(corpus.train)
  for t in tasks.values():
    assert not [e.id for e in _examples(t) if index.contains(e.input)], t.name
    # The same for a sample by a plain scan of every training document.
    for e in _examples(t)[::max(1, len(_examples(t)) // 25)]:
      data = e.input.encode()
      assert not any(data in doc for doc in corpus.train), e.id
  # Control: a held-out function's common last line does occur in training.
  assert index.contains("        return self")


def test_splits_are_disjoint_by_source_and_input(tasks):
  for t in tasks.values():
    ids = [{e.id for e in t.splits[s]} for s in SPLITS]
    inputs = [{e.input for e in t.splits[s]} for s in SPLITS]
    for a in range(3):
      for b in range(a + 1, 3):
        assert not ids[a] & ids[b] and not inputs[a] & inputs[b], t.name


def test_classification_is_balanced_with_at_least_four_classes(tasks):
  t = tasks["stdlib_package"]
  assert len(t.labels) >= 4 and t.candidates() == t.labels
  assert list(t.labels) == sorted(t.labels)
  for split in SPLITS:
    counts = collections.Counter(e.target for e in t.splits[split])
    assert set(counts) == set(t.labels), split
    assert len(set(counts.values())) == 1, (split, counts)
  for e in _examples(t):  # the label is the source's top-level package
    assert e.target == e.sources[0].split("/")[0].removesuffix(".py")
  # Disjoint by source function: ids are document::qualname.
  ids = [e.id for e in _examples(t)]
  assert len(set(ids)) == len(ids) and all("::" in i for i in ids)


def _summaries(source: str) -> dict[str, set[str]]:
  """Function name -> first docstring lines of the defs of that name."""
  out = collections.defaultdict(set)
  for n in ast.walk(ast.parse(source)):
    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
      doc = ast.get_docstring(n)
      if doc:
        out[n.name].add(doc.strip().split("\n")[0].strip())
  return out


def test_docstrings_are_stripped_and_summaries_are_first_lines(tasks, corpus):
  budget = min(tasks[n].provenance["params"]["max_input_bytes"]
               for n in ("stdlib_package", "stdlib_docstring"))
  checked = 0
  for name in ("stdlib_package", "stdlib_docstring"):
    for e in _examples(tasks[name]):
      if len(e.input.encode()) >= budget - 4:
        continue  # possibly truncated: may not parse
      tree = ast.parse(e.input)
      assert isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef))
      assert ast.get_docstring(tree.body[0]) is None, e.id
      checked += 1
  assert checked > 500
  # The summary is the first line of the docstring of a def of that name.
  docs = dict(zip(corpus.val_names, corpus.val))
  summaries = {}
  for e in _examples(tasks["stdlib_docstring"]):
    doc, qualname = e.id.split("::")
    if doc not in summaries:
      summaries[doc] = _summaries(docs[doc].decode())
    name = qualname.split("#")[0].split(".")[-1]
    assert e.target in summaries[doc][name], e.id
    assert len(e.target.split()) >= 3


def test_tagging_round_trip_and_document_tokenization(tasks, corpus):
  t = tasks["stdlib_tokens"]
  docs = {n: d.decode() for n, d in zip(corpus.val_names, corpus.val)}
  doc_spans = {}
  for e in _examples(t):
    placed, unplaced = tagging.extract_spans(e.target, e.input)
    assert placed == list(e.spans) and unplaced == [], e.id
    # Second way: the whole document's tokenization, cut to the chunk.
    doc, line = e.id.rsplit("@", 1)
    text = docs[doc]
    if doc not in doc_spans:
      offsets = [0]
      for l in text.split("\n"):
        offsets.append(offsets[-1] + len(l) + 1)
      doc_spans[doc] = tagging.source_spans(text), offsets
    spans, offsets = doc_spans[doc]
    start = offsets[int(line) - 1]
    end = start + len(e.input)
    assert text[start:end] == e.input
    expected = [(lab, s - start, x - start) for lab, s, x in spans
                if start <= s < end]
    assert list(e.spans) == expected, e.id
  test = t.splits["test"]
  gold = metrics.score_task(t, [e.target for e in test])
  assert gold == dict(span_precision=1.0, span_recall=1.0, span_f1=1.0)
  # A prediction with every keyword span removed loses recall only.
  no_kw = ["\n".join(l for l in e.target.split("\n")
                     if not l.startswith("keyword ")) for e in test]
  worse = metrics.score_task(t, no_kw)
  assert worse["span_precision"] == 1.0 and worse["span_recall"] < 0.9


def test_examples_fit_their_budgets_and_rows(tasks):
  for t in tasks.values():
    params = t.provenance["params"]
    for e in _examples(t):
      assert len(e.input.encode()) <= params["max_input_bytes"], e.id
      assert len(e.target.encode()) <= params["max_target_bytes"], e.id
    rows = task_rows(_examples(t), SEQ_LEN)
    assert rows.batch["inputs"].shape == (len(_examples(t)), SEQ_LEN)


_DETERMINISM = """
import json
from scaling.config import default_config
from scaling.data.sources import load_corpus
from scaling.tasks import build_builtin_tasks
tasks = build_builtin_tasks(load_corpus(default_config().data), seq_len=512)
print(json.dumps({n: t.content_hash for n, t in tasks.items()}))
"""


def test_building_again_in_another_process_gives_the_same_tasks(
    tasks, tmp_path):
  out = run_subprocess(_DETERMINISM, devices=1, env=dict(
      PYTHONHASHSEED="12345", XDG_CACHE_HOME=str(tmp_path)))
  hashes = json.loads(out.strip().splitlines()[-1])
  assert hashes == {n: t.content_hash for n, t in tasks.items()}
  # Negative control: the hash sees a one-character change of one target.
  t = tasks["stdlib_docstring"]
  e = t.splits["test"][0]
  changed = dict(t.splits, test=(dataclasses.replace(e, target=e.target + "."),)
                 + t.splits["test"][1:])
  assert dataclasses.replace(t, splits=changed).content_hash != t.content_hash


def test_builder_options_and_errors(corpus, tasks):
  again = build_task("stdlib_package", corpus, seq_len=SEQ_LEN)
  assert again == tasks["stdlib_package"]
  modules = build_task("stdlib_package", corpus, seq_len=SEQ_LEN,
                       label_level="module", min_per_class=60)
  assert len(modules.labels) >= 4 and "logging.handlers" in modules.labels
  with pytest.raises(ValueError, match="lower min_per_class"):
    build_task("stdlib_package", corpus, min_per_class=10_000)
  with pytest.raises(ValueError, match="exceeds seq_len"):
    build_task("stdlib_docstring", corpus, seq_len=128, max_input_bytes=120)
  with pytest.raises(ValueError, match="label_level"):
    builtin.build_stdlib_package(corpus, max_input_bytes=10,
                                 max_target_bytes=10, label_level="file")
