"""Document sources, the train/validation split and the corpus hash."""

import json
import os
import shutil

import ml_collections
import pytest

from scaling.config import ConfigError
from scaling.config import default_config
from scaling.data import sources


def _data_cfg(**kw):
  cfg = default_config().data
  cfg.update(kw)
  return cfg


@pytest.fixture(scope="module")
def stdlib_corpus():
  return sources.load_corpus(_data_cfg())


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def test_stdlib_walk_leaves_out_tests_codecs_and_build_files(tmp_path):
  root = str(tmp_path)
  kept = ["a.py", "pkg/__init__.py", "pkg/sub/b.py", "idlelib/c.py",
          "unittest/mock.py"]
  dropped = ["test/test_a.py", "pkg/tests/t.py", "idlelib/idle_test/t.py",
             "lib2to3/tests/data/x.py", "ctypes/test/t.py",
             "encodings/cp1252.py", "site-packages/numpy/core.py",
             "__pycache__/a.py", "_sysconfigdata__linux.py",
             "config-3.11-x86_64-linux-gnu/python-config.py", "README.txt"]
  for name in kept + dropped:
    _write(os.path.join(root, name), f"# {name}\n")
  _write(os.path.join(root, "empty.py"), "")
  docs = list(sources.stdlib_documents(root))
  assert sorted(d.name for d in docs) == sorted(kept)
  groups = {d.name: d.group for d in docs}
  assert groups["a.py"] == "a" and groups["pkg/sub/b.py"] == "pkg"


def test_real_stdlib_corpus(stdlib_corpus):
  c = stdlib_corpus
  names = c.train_names + c.val_names
  assert "json/decoder.py" in names and "argparse.py" in names
  for n in names:
    parts = n.split("/")
    assert not {"test", "tests", "idle_test", "site-packages"} & set(parts), n
    assert parts[0] != "encodings", n
  # About 11 MB (Python 3.11: 10.7 MB); bounds loose across versions.
  assert 5e6 < c.train_bytes + c.val_bytes < 25e6
  frac = c.val_bytes / (c.train_bytes + c.val_bytes)
  assert 0.05 <= frac < 0.2
  assert c.name == "stdlib" and "standard library" in c.description


def test_split_keeps_each_package_on_one_side(stdlib_corpus):
  c = stdlib_corpus

  def group(name):
    return name.split("/")[0].removesuffix(".py")

  train_groups = {group(n) for n in c.train_names}
  val_groups = {group(n) for n in c.val_names}
  assert val_groups and not train_groups & val_groups
  assert val_groups == sources.split_groups(
      list(sources.stdlib_documents()), 0.05)


def test_split_takes_groups_in_hash_order_until_the_fraction():
  docs = [sources.Document(f"g{i}/x", f"g{i}", b"x" * 100) for i in range(40)]
  val = sources.split_groups(docs, 0.1)
  assert len(val) == 4  # exactly 10% of the bytes: four 100-byte groups
  order = sorted({d.group for d in docs}, key=sources._group_key)
  assert val == set(order[:4])
  assert sources.split_groups(docs[:1], 0.5) == set()  # one group trains


def test_corpus_hash_stable_and_sensitive(tmp_path):
  for i in range(6):
    _write(str(tmp_path / "c" / f"doc{i}.txt"), f"document number {i}\n")
  cfg = _data_cfg(source="text_files", path=str(tmp_path / "c" / "*.txt"),
                  val_fraction=0.3)
  h0 = sources.load_corpus(cfg).corpus_hash
  assert h0 == sources.load_corpus(cfg).corpus_hash
  # Moving the corpus directory keeps its hash (names are relative).
  shutil.copytree(tmp_path / "c", tmp_path / "moved")
  moved = _data_cfg(source="text_files", path=str(tmp_path / "moved/*.txt"),
                    val_fraction=0.3)
  assert sources.load_corpus(moved).corpus_hash == h0
  # One changed byte, or a different split, changes it.
  _write(str(tmp_path / "c" / "doc3.txt"), "document number 4\n")
  assert sources.load_corpus(cfg).corpus_hash != h0
  cfg.val_fraction = 0.6
  _write(str(tmp_path / "c" / "doc3.txt"), "document number 3\n")
  assert sources.load_corpus(cfg).corpus_hash != h0


def test_stdlib_hash_is_stable(stdlib_corpus):
  again = sources.load_corpus(_data_cfg())
  assert again.corpus_hash == stdlib_corpus.corpus_hash
  assert len(again.corpus_hash) == 64


def test_text_files_txt_and_jsonl(tmp_path):
  _write(str(tmp_path / "a.txt"), "plain text one")
  _write(str(tmp_path / "sub" / "b.txt"), "plain text two")
  lines = [json.dumps({"text": f"línea {i}"}) for i in range(5)]
  _write(str(tmp_path / "sub" / "c.jsonl"), "\n".join(lines[:3]) + "\n\n")
  _write(str(tmp_path / "d.jsonl"), "\n".join(lines[3:]))
  cfg = _data_cfg(source="text_files", path=str(tmp_path / "**" / "*"),
                  val_fraction=0.3)
  c = sources.load_corpus(cfg)
  names = sorted(c.train_names + c.val_names)
  assert names == ["a.txt", "d.jsonl:1", "d.jsonl:2", "sub/b.txt",
                   "sub/c.jsonl:1", "sub/c.jsonl:2", "sub/c.jsonl:3"]
  docs = dict(zip(c.train_names + c.val_names, c.train + c.val))
  assert docs["sub/c.jsonl:2"] == "línea 1".encode()
  assert docs["a.txt"] == b"plain text one"
  # Lines of one file stay on one side of the split.
  sides = {n.split(":")[0]: n in c.val_names for n in names}
  for n in names:
    assert (n in c.val_names) == sides[n.split(":")[0]]


def test_single_jsonl_file_splits_by_document(tmp_path):
  path = tmp_path / "one.jsonl"
  _write(str(path), "\n".join(json.dumps({"text": "t" * 50 + str(i)})
                              for i in range(40)))
  c = sources.load_corpus(_data_cfg(source="text_files", path=str(path)))
  assert len(c.val) == 3 and len(c.train) == 37  # >= 5% of bytes held out


@pytest.mark.parametrize("kw, field", [
    (dict(source="text_files", path=""), "data.path"),
    (dict(source="text_files", path="/nonexistent/dir/*.txt"), "data.path"),
    (dict(source="wikipedia"), "data.source"),
    (dict(val_fraction=0.0), "data.val_fraction"),
])
def test_clear_config_errors(kw, field):
  with pytest.raises(ConfigError) as e:
    sources.load_corpus(_data_cfg(**kw))
  assert e.value.field == field and f"config.{field}" in str(e.value)


def test_bad_files_name_data_path(tmp_path):
  _write(str(tmp_path / "x.csv"), "a,b")
  with pytest.raises(ConfigError, match="neither .txt nor .jsonl"):
    list(sources.text_file_documents(str(tmp_path / "*")))
  _write(str(tmp_path / "bad.jsonl"), '{"text": "ok"}\n{"body": "no"}\n')
  with pytest.raises(ConfigError, match=r"bad.jsonl:2.*'text'") as e:
    list(sources.text_file_documents(str(tmp_path / "*.jsonl")))
  assert e.value.field == "data.path"
  _write(str(tmp_path / "only.txt"), "one document")
  with pytest.raises(ConfigError, match="at least 2"):
    sources.load_corpus(ml_collections.ConfigDict(dict(
        source="text_files", path=str(tmp_path / "only.txt"),
        val_fraction=0.05)))
