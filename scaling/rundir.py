"""The run directory: checked, claimed and described before training starts.

Everything here happens before anything is compiled, and before anything is
written except the claim (DESIGN.md §3):

* :func:`check_workdir`: an absolute path that can be a run directory (not
  empty, not a file, not under a file, not a sweep directory);
* :func:`claim`: an exclusive claim on the directory (``<workdir>/.claim``,
  :mod:`scaling.claims`), taken by process 0 and agreed by all, so a second
  command on a live workdir stops with exit status 2 naming the holder;
* :func:`check_identity`: a directory of another run is refused;
* :func:`parse_init_from`: ``RUN_DIR@STEP`` names a saved checkpoint;
* :func:`provenance`: git commit, library versions and corpus hash for
  ``config.json``; :func:`read_run_config` reads another run's.
"""

from __future__ import annotations

import json
import os
import subprocess

from etils import epath
import flax
import jax
import jaxlib

from scaling import agree
from scaling import claims
from scaling.config import ConfigError

CLAIM_FILE = ".claim"
CLAIM_STALE_SECONDS = 60.0
CLAIM_HEARTBEAT_SECONDS = 5.0


class IdentityMismatch(ConfigError):
  """The run directory belongs to a run with another identity."""


class WorkdirBusy(ConfigError):
  """Another live command holds the run directory's claim."""


def is_posix(path) -> bool:
  """False for object-store paths such as ``gs://bucket/run``."""
  return "://" not in os.fspath(path)


def absolute(path) -> epath.Path:
  """orbax wants absolute paths: a relative local path is taken from the cwd."""
  text = os.fspath(path)
  return epath.Path(text if not is_posix(text) else os.path.abspath(text))


def check_workdir(workdir) -> epath.Path:
  """The absolute run directory, refusing paths that cannot be one.

  Raises:
    ConfigError: (``--workdir``) empty, a file, under a file, or a sweep
      directory.
  """
  if not os.fspath(workdir).strip():
    raise ConfigError("--workdir", "is empty; give the run directory, "
                      "e.g. --workdir runs/my_run.")
  path = absolute(workdir)
  if path.exists() and not path.is_dir():
    raise ConfigError("--workdir", f"{path} is a file, not a run "
                      "directory; choose another --workdir.")
  if is_posix(path):
    parent = os.fspath(path)
    while not os.path.exists(parent):
      parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
      raise ConfigError("--workdir", f"{parent} is a file, so {path} cannot "
                        "be created; choose a --workdir under a directory.")
    if not os.access(parent, os.W_OK):
      raise ConfigError("--workdir", f"{parent} is not writable, so {path} "
                        "cannot be created; choose another --workdir.")
  if (path / "results.csv").exists():
    raise ConfigError("--workdir", f"{path} is a sweep directory; "
                      "give a new run directory instead.")
  return path


def claim(workdir: epath.Path) -> claims.Claim | None:
  """Takes the exclusive claim on ``workdir`` (process 0; all agree).

  The claim is stale as soon as its holder's pid is gone on this host, or
  after :data:`CLAIM_STALE_SECONDS` without a heartbeat from another host,
  so a killed run's directory is free again for the same command.

  Returns:
    The held :class:`scaling.claims.Claim` on process 0 (release it when the
    run ends), None on other processes and for ``gs://`` directories (no
    exclusive create there: see :mod:`scaling.claims`).

  Raises:
    WorkdirBusy: (``--workdir``) a live command holds it; names its host
      and pid. Nothing is written.
  """
  if not is_posix(workdir):
    if jax.process_index() == 0:
      print(f"note: {workdir} is not a POSIX path; no claim is taken, so do "
            "not start two commands on it at once", flush=True)
    return None
  held, holder = None, None
  if jax.process_index() == 0:
    held = claims.Claim(os.fspath(workdir / CLAIM_FILE), CLAIM_STALE_SECONDS,
                        CLAIM_HEARTBEAT_SECONDS)
    if not held.acquire():
      holder = claims.describe(held.owner())
      held = None
  holder = agree.broadcast(holder)
  if holder is not None:
    raise WorkdirBusy("--workdir", (
        f"{workdir} is being trained by {holder}; wait for it to finish, "
        "stop it, or choose another --workdir."))
  return held


def check_identity(workdir: epath.Path, identity: str) -> None:
  """Refuses a directory whose ``config.json`` names another run.

  Raises:
    IdentityMismatch: (``--workdir``).
  """
  path = workdir / "config.json"
  if not path.exists():
    return
  previous = json.loads(path.read_text()).get("identity")
  if previous != identity:
    raise IdentityMismatch(
        "--workdir", f"{workdir} holds run {previous}, but this config is run "
        f"{identity}; use a new --workdir, or the original config to resume.")


def parse_init_from(spec: str) -> tuple[epath.Path, int]:
  """``RUN_DIR@STEP`` → (absolute run dir, step), checked to exist.

  Raises:
    ConfigError: (``--init-from``) malformed spec, or no such checkpoint
      (lists the saved ones).
  """
  run_dir, _, step = spec.rpartition("@")
  if not run_dir or not step.isdigit():
    raise ConfigError("--init-from", f"expected RUN_DIR@STEP, got '{spec}'.")
  run_dir = absolute(run_dir)
  ckpts = run_dir / "checkpoints"
  try:
    saved = sorted(int(p.name) for p in ckpts.iterdir()
                   if p.name.isdigit()) if ckpts.is_dir() else []
  except OSError as e:
    raise ConfigError("--init-from", f"cannot read {ckpts}: {e}.") from e
  if int(step) not in saved:
    raise ConfigError(
        "--init-from", f"{run_dir} has no checkpoint at step {step}; saved "
        f"steps: {saved or 'none'}.")
  return run_dir, int(step)


def read_run_config(run_dir, flag: str = "--init-from") -> dict:
  """A run directory's ``config.json`` (identity, config, provenance).

  Raises:
    ConfigError: (``flag``) no readable ``config.json`` with a ``config``.
  """
  path = absolute(run_dir) / "config.json"
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ConfigError(flag, f"cannot read {path} ({type(e).__name__}); give "
                      "the directory of a training run.") from e
  if not isinstance(record, dict) or "config" not in record:
    raise ConfigError(flag, f"{path} is not a run's config.json (no "
                      "'config'); give the directory of a training run.")
  return record


def provenance(corpus) -> dict:
  """Git commit and dirty flag, library versions and the corpus hash."""
  here = os.path.dirname(os.path.abspath(__file__))

  def git(*args):
    try:
      return subprocess.run(["git", *args], cwd=here, capture_output=True,
                            text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return ""

  return dict(git_commit=git("rev-parse", "HEAD") or None,
              git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
              jax=jax.__version__, jaxlib=jaxlib.__version__,
              flax=flax.__version__, corpus=corpus.name,
              corpus_hash=corpus.corpus_hash)
