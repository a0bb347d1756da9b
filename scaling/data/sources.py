"""Document sources and the deterministic train/validation split.

A source yields named documents (bytes). Two are built in:

* ``stdlib`` (the default): the running interpreter's standard-library ``.py``
  files, about 11 MB of text written by people, present on every machine. Test
  packages (``test/``, ``tests/``, ``idle_test/`` …), the near-duplicate codec
  tables of ``encodings/``, ``site-packages`` and build-machine files
  (``_sysconfigdata_*``, ``config-*/``) are left out.
* ``text_files``: a glob (``data.path``) of ``.txt`` files (one document per
  file) or ``.jsonl`` files (one document per line, its ``text`` field).

The split keeps near-duplicates on one side: documents are grouped (stdlib: by
top-level module or package; text_files: by file, or by document when the glob
matches a single file), groups are ordered by the sha256 of their name, and the
validation split takes groups in that order until it holds at least
``val_fraction`` of the bytes. The split depends on the corpus only, never on
the data seed, so every run on one corpus is scored on the same held-out text.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import hashlib
import json
import os
import platform
import sysconfig
from typing import Callable, Iterator

from scaling.config import ConfigError

# Directory names under the stdlib that hold tests, build files or installed
# third-party packages rather than library code.
_STDLIB_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "__pycache__", "site-packages",
     "lib-dynload", "encodings"})
_CORPUS_HASH_VERSION = b"scaling-corpus-v1\0"


@dataclasses.dataclass(frozen=True)
class Document:
  """One document: a stable name, the split group it belongs to, its bytes."""
  name: str
  group: str
  text: bytes


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A loaded corpus, split into train and validation documents.

  Attributes:
    name: the source name (``stdlib`` or ``text_files``).
    description: one human-readable line (what, how many documents and bytes,
      the split).
    train: training documents (bytes), sorted by name.
    val: validation documents (bytes), sorted by name.
    train_names: names of ``train`` (same order).
    val_names: names of ``val`` (same order).
    corpus_hash: sha256 hex digest over the sorted document names and contents
      and each document's side of the split (record it in config.json).
  """
  name: str
  description: str
  train: list[bytes]
  val: list[bytes]
  train_names: list[str]
  val_names: list[str]
  corpus_hash: str

  @property
  def train_bytes(self) -> int:
    """Bytes in the training split."""
    return sum(len(d) for d in self.train)

  @property
  def val_bytes(self) -> int:
    """Bytes in the validation split."""
    return sum(len(d) for d in self.val)


# ---------------------------------------------------------------- sources


def stdlib_dir() -> str:
  """The running interpreter's standard-library directory (sysconfig)."""
  return sysconfig.get_paths()["stdlib"]


def _stdlib_skip_file(rel_parts: list[str]) -> bool:
  name = rel_parts[-1]
  if not name.endswith(".py"):
    return True
  if len(rel_parts) == 1 and name.startswith("_sysconfigdata_"):
    return True  # generated, holds the build machine's paths
  return False


def stdlib_documents(root: str | None = None) -> Iterator[Document]:
  """The standard library's ``.py`` files as documents.

  Args:
    root: the stdlib directory; default :func:`stdlib_dir`.

  Yields:
    Documents named by their '/'-separated path under ``root``, grouped by
    top-level module or package (``json/decoder.py`` → ``json``,
    ``argparse.py`` → ``argparse``). Empty files are skipped.
  """
  root = root or stdlib_dir()
  for dirpath, dirnames, filenames in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    rel_parts = [] if rel == "." else rel.split(os.sep)
    dirnames[:] = sorted(
        d for d in dirnames
        if d not in _STDLIB_SKIP_DIRS
        and not d.startswith(("config-", ".")))
    for fname in sorted(filenames):
      parts = rel_parts + [fname]
      if _stdlib_skip_file(parts):
        continue
      with open(os.path.join(dirpath, fname), "rb") as f:
        text = f.read()
      if not text:
        continue
      group = parts[0][:-3] if len(parts) == 1 else parts[0]
      yield Document("/".join(parts), group, text)


def _read_jsonl(path: str, name: str) -> Iterator[Document]:
  with open(path, "rb") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      where = f"{path}:{lineno}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ConfigError(
            "data.path", f"{where} is not valid JSON ({e}); each line of a "
            ".jsonl file must be one JSON object with a 'text' field") from e
      if not isinstance(record, dict) or not isinstance(
          record.get("text"), str):
        raise ConfigError(
            "data.path", f"{where} has no string 'text' field; each line of "
            "a .jsonl file must be an object like {\"text\": \"...\"}")
      text = record["text"].encode("utf-8")
      if text:
        yield Document(f"{name}:{lineno}", name, text)


def text_file_documents(pattern: str) -> Iterator[Document]:
  """Documents from a glob of ``.txt`` or ``.jsonl`` files.

  Args:
    pattern: a glob (``**`` allowed), e.g. ``corpus/*.jsonl``.

  Yields:
    ``.txt``: one document per file; ``.jsonl``: one per non-empty line (its
    ``text`` field, UTF-8 encoded). Names are paths relative to the matched
    files' common directory (so moving the corpus keeps its hash), with
    ``:LINE`` for jsonl; the group is the file.

  Raises:
    ConfigError: (``data.path``) no match, a file that is not
      ``.txt``/``.jsonl``, or a malformed jsonl line.
  """
  paths = sorted(p for p in globlib.glob(os.path.expanduser(pattern),
                                         recursive=True) if os.path.isfile(p))
  if not paths:
    raise ConfigError(
        "data.path", f"the glob {pattern!r} matches no files; give a glob of "
        "existing .txt or .jsonl files (or use data.source=stdlib)")
  bad = [p for p in paths if not p.endswith((".txt", ".jsonl"))]
  if bad:
    raise ConfigError(
        "data.path", f"the glob {pattern!r} matches {bad[0]!r}, which is "
        "neither .txt nor .jsonl; narrow the glob, e.g. 'corpus/*.txt'")
  base = os.path.dirname(paths[0]) if len(paths) == 1 else os.path.commonpath(
      [os.path.abspath(p) for p in paths])
  for path in paths:
    name = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    name = name.replace(os.sep, "/")
    if path.endswith(".jsonl"):
      yield from _read_jsonl(path, name)
    else:
      with open(path, "rb") as f:
        text = f.read()
      if text:
        yield Document(name, name, text)


# ----------------------------------------------------------------- split


def _group_key(group: str) -> bytes:
  return hashlib.sha256(group.encode("utf-8")).digest()


def split_groups(docs: list[Document], val_fraction: float) -> set[str]:
  """Names of the groups held out for validation.

  Groups in order of sha256(group name) go to validation until it holds at
  least ``val_fraction`` of all bytes; at least one group stays in training.

  Args:
    docs: the documents.
    val_fraction: target share of bytes held out, in (0, 1).

  Returns:
    The set of validation group names (empty when there is only one group).
  """
  sizes: dict[str, int] = {}
  for d in docs:
    sizes[d.group] = sizes.get(d.group, 0) + len(d.text)
  order = sorted(sizes, key=_group_key)
  target = val_fraction * sum(sizes.values())
  val, held = set(), 0
  for g in order[:-1]:  # the last group in hash order always trains
    if held >= target:
      break
    val.add(g)
    held += sizes[g]
  return val


def corpus_hash(docs: list[Document], val_groups: set[str]) -> str:
  """sha256 over sorted (name, side of the split, length, contents).

  Returns:
    Hex digest; changes with any byte of any document, any name, or the split.
  """
  h = hashlib.sha256(_CORPUS_HASH_VERSION)
  for d in sorted(docs, key=lambda d: d.name):
    h.update(d.name.encode("utf-8") + b"\0")
    h.update(b"v" if d.group in val_groups else b"t")
    h.update(len(d.text).to_bytes(8, "little"))
    h.update(d.text)
  return h.hexdigest()


# ------------------------------------------------------------------ load

_SOURCES: dict[str, Callable[[object], Iterator[Document]]] = {
    "stdlib": lambda cfg: stdlib_documents(),
    "text_files": lambda cfg: text_file_documents(cfg.path),
}


def _describe(source: str, data_cfg) -> str:
  if source == "stdlib":
    return (f"Python {platform.python_version()} standard library .py files "
            "(tests, encodings/, site-packages left out), split by top-level "
            "module")
  return f"text files {data_cfg.path!r}, split by file"


def check_data_config(data_cfg) -> None:
  """The checks of the ``data`` section that need no file access.

  Called by ``scaling.validation.validate`` (before anything is built) and
  by :func:`load_corpus`.

  Raises:
    ConfigError: unknown ``data.source``; ``data.val_fraction`` outside
      (0, 1); ``text_files`` without a ``data.path`` glob.
  """
  if data_cfg.source not in _SOURCES:
    raise ConfigError(
        "data.source", f"unknown source {data_cfg.source!r}; use one of "
        f"{sorted(_SOURCES)} (text_files reads the glob data.path)")
  val_fraction = float(data_cfg.val_fraction)
  if not 0.0 < val_fraction < 1.0:
    raise ConfigError(
        "data.val_fraction", f"is {val_fraction}; it must be in (0, 1), "
        "e.g. 0.05 to hold out 5% of the bytes for evaluation")
  if data_cfg.source == "text_files" and not data_cfg.path:
    raise ConfigError(
        "data.path", "is empty; data.source=text_files needs a glob of .txt "
        "or .jsonl files, e.g. --config.data.path='corpus/*.txt'")


_CORPORA: dict[tuple, Corpus] = {}  # this process's loaded corpora


def _stamp(data_cfg) -> tuple:
  """What identifies the corpus's content cheaply: the stdlib's directory, or
  every matched file's path, size and modification time."""
  if data_cfg.source == "stdlib":
    return (stdlib_dir(),)
  paths = sorted(globlib.glob(os.path.expanduser(data_cfg.path), recursive=True))
  stats = []
  for p in paths:
    try:
      st = os.stat(p)
    except OSError:
      continue
    stats.append((p, st.st_size, st.st_mtime_ns))
  return tuple(stats)


def load_corpus(data_cfg) -> Corpus:
  """The corpus named by the ``data`` config section, split (cached).

  A process loads each corpus once: the runs of a sweep share it (about
  2 s for the standard library). A text-file corpus is read again when a
  matched file changes (size or modification time).

  Args:
    data_cfg: ``config.data`` (fields ``source``, ``path``, ``val_fraction``).

  Returns:
    The :class:`Corpus` (documents sorted by name on each side).

  Raises:
    ConfigError: unknown ``data.source``; ``data.val_fraction`` outside (0, 1);
      a bad ``data.path`` (see :func:`text_file_documents`); fewer than two
      non-empty documents.
  """
  check_data_config(data_cfg)
  key = (data_cfg.source, data_cfg.path, float(data_cfg.val_fraction),
         _stamp(data_cfg))
  if key not in _CORPORA:
    _CORPORA[key] = _load(data_cfg)
  return _CORPORA[key]


def _load(data_cfg) -> Corpus:
  source, val_fraction = data_cfg.source, float(data_cfg.val_fraction)
  docs = sorted(_SOURCES[source](data_cfg), key=lambda d: d.name)
  if len(docs) < 2:
    where = "data.path" if source == "text_files" else "data.source"
    raise ConfigError(
        where, f"the corpus has {len(docs)} non-empty document(s); a train/"
        "validation split needs at least 2")
  if len({d.group for d in docs}) == 1:  # one file: split by document
    docs = [dataclasses.replace(d, group=d.name) for d in docs]
  val_groups = split_groups(docs, val_fraction)
  train = [d for d in docs if d.group not in val_groups]
  val = [d for d in docs if d.group in val_groups]
  n_bytes = sum(len(d.text) for d in docs)
  held = sum(len(d.text) for d in val) / n_bytes
  description = (
      f"{_describe(source, data_cfg)}: {len(docs)} documents, "
      f"{n_bytes / 1e6:.2f} MB; validation {len(val)} documents in "
      f"{len(val_groups)} groups ({100 * held:.1f}% of bytes)")
  return Corpus(
      name=source,
      description=description,
      train=[d.text for d in train],
      val=[d.text for d in val],
      train_names=[d.name for d in train],
      val_names=[d.name for d in val],
      corpus_hash=corpus_hash(docs, val_groups),
  )
