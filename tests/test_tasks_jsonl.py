"""JSONL task files: a good file loads; every bad line names file and line."""

import json

import pytest

from scaling.config import ConfigError
from scaling.tasks import load_task
from scaling.tasks.jsonl import load_jsonl_task


def _write(tmp_path, lines, name="mine.jsonl"):
  path = tmp_path / name
  path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l)
                            for l in lines) + "\n")
  return str(path)


def _labelled(n=9):
  splits = ["train", "validation", "test"]
  return [dict(input=f"text {i}", label=["pos", "neg"][i % 2],
               split=splits[i % 3]) for i in range(n)]


def test_classification_file_with_split_field(tmp_path):
  path = _write(tmp_path, _labelled() + [""])  # blank lines are skipped
  task = load_task(path, seq_len=128)
  assert task.name == "mine" and task.kind == "classification"
  assert task.sizes() == dict(train=3, validation=3, test=3)
  assert task.candidates() == ("neg", "pos")
  assert [e.input for e in task.splits["validation"]] == [
      "text 1", "text 4", "text 7"]
  assert task.splits["train"][0].id == "mine:1"
  assert task.provenance["split_from"] == "split field"
  assert len(task.provenance["file_sha256"]) == 64


def test_generation_file_without_split_is_hash_split(tmp_path):
  lines = [dict(input=f"q{i % 30}", target=f"a{i}") for i in range(60)]
  task = load_jsonl_task(_write(tmp_path, lines))
  assert task.kind == "generation" and task.labels == ()
  assert sum(task.sizes().values()) == 60
  assert task.provenance["split_from"] == "sha256 of input"
  side = {}
  for split, examples in task.splits.items():
    for e in examples:  # equal inputs always share a split
      assert side.setdefault(e.input, split) == split
  again = load_jsonl_task(_write(tmp_path, lines[::-1], "other.jsonl"))
  assert {s: sorted(e.input for e in v) for s, v in again.splits.items()} == {
      s: sorted(e.input for e in v) for s, v in task.splits.items()}


def test_budgets_truncate_inputs_and_drop_long_targets(tmp_path):
  lines = [dict(input="é" * 40, target="t" * (5 if i else 50),
                split=["train", "validation", "test", "train"][i])
           for i in range(4)]
  task = load_jsonl_task(_write(tmp_path, lines), max_input_bytes=11,
                         max_target_bytes=10)
  assert task.provenance["counts"] == dict(lines=4, target_too_long=1,
                                           inputs_truncated=3)
  assert all(e.input == "é" * 5 for s in task.splits.values() for e in s)


@pytest.mark.parametrize("bad, message", [
    ("{not json", "is not valid JSON"),
    ('["input", "x"]', "is a JSON list, not an object"),
    ({"input": "x", "lable": "a", "split": "train"}, "unknown key 'lable'"),
    ({"target": "x", "split": "train"}, "no non-empty 'input'"),
    ({"input": "x", "target": "y", "label": "a", "split": "train"},
     "exactly one of 'target'"),
    ({"input": "x", "label": "", "split": "train"}, "has an empty label"),
    ({"input": "x", "label": 3, "split": "train"}, "'label' is a int"),
    ({"input": "x", "label": "a", "split": "dev"}, "split 'dev' is not one"),
    ({"input": "x", "target": "a", "split": "train"}, "has no 'label'"),
    ({"input": "x", "label": "a"}, "'split' on every line or on none"),
    ({"input": "x", "label": "a", "split": "train", "id": "dup"},
     "id 'dup' is used twice"),
])
def test_bad_line_names_file_and_line(tmp_path, bad, message):
  lines = _labelled(6)
  lines[0]["id"] = "dup"
  lines.insert(3, bad)  # line 4 of the file
  path = _write(tmp_path, lines)
  with pytest.raises(ConfigError, match=message) as err:
    load_task(path)
  assert f"{path}:4:" in str(err.value)
  assert str(err.value).startswith("--task: ")


def test_whole_file_errors(tmp_path):
  with pytest.raises(ConfigError, match="the test split is empty"):
    load_task(_write(tmp_path,
                     [l for l in _labelled() if l["split"] != "test"]))
  one_label = [dict(l, label="pos") for l in _labelled()]
  with pytest.raises(ConfigError, match="1 distinct label"):
    load_task(_write(tmp_path, one_label))
  with pytest.raises(ConfigError, match="holds no example"):
    load_task(_write(tmp_path, ["", " "]))
  with pytest.raises(ConfigError, match="longer than the 4-byte target"):
    load_jsonl_task(_write(tmp_path, [dict(l, label=l["label"] * 3)
                                      for l in _labelled()]),
                    max_target_bytes=4)
  with pytest.raises(ConfigError, match="does not exist"):
    load_task(str(tmp_path / "missing.jsonl"))
  with pytest.raises(ConfigError, match="unknown task 'stdlib_pkg'; use one "
                     "of stdlib_package"):
    load_task("stdlib_pkg")
