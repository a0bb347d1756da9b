"""Golden --dry-run outputs of tpu, slurm (single job, array) and gke launches; plan semantics.

Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 python -m pytest tests/launch/test_launch_dry_run.py`` and review the diff.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from launch import cli, plan, tpu

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"
CODE = ["--repo", "https://github.com/example/scaling.git",
        "--commit", "0123456789abcdef0123456789abcdef01234567"]
SWEEP_GS = ["--", "sweep", "chinchilla_isoflop", "--workdir",
            "gs://my-bucket/sweeps/chinchilla_isoflop"]
SWEEP_NFS = ["--", "sweep", "chinchilla_isoflop", "--workdir", "/shared/sweeps/chinchilla_isoflop"]

CASES = {
    "launch_tpu_dry_run.txt": [
        "tpu", "--name", "scaling-v5e-256", "--zone", "us-west4-a", "--project", "my-project",
        "--accelerator-type", "v5litepod-256", *CODE, "--delete", "--dry-run", *SWEEP_GS],
    "launch_tpu_queued_dry_run.txt": [
        "tpu", "--name", "scaling-v4-32", "--zone", "us-central2-b", "--accelerator-type",
        "v4-32", "--queued", "--spot", *CODE, "--env", "WANDB_MODE=offline", "--delete",
        "--dry-run", *SWEEP_GS],
    "launch_slurm_dry_run.txt": [
        "slurm", "--nodes", "2", "--gpus-per-node", "8", "--partition", "gpu", "--time",
        "24:00:00", "--setup", "source .venv/bin/activate", "--dry-run", *SWEEP_NFS],
    "launch_slurm_array_dry_run.txt": [
        "slurm", "--nodes", "1", "--gpus-per-node", "4", "--process-per", "node", "--array", "8",
        "--array-parallel", "4", "--account", "my-account", "--dry-run", *SWEEP_NFS],
    "launch_gke_dry_run.txt": [
        "gke", "--cluster", "my-cluster", "--tpu-type", "v5litepod-256", "--docker-image",
        "us-docker.pkg.dev/my-project/scaling/scaling:0123456789ab", "--project", "my-project",
        "--zone", "us-west4-a", "--priority", "medium", "--dry-run", *SWEEP_GS],
}


@pytest.mark.parametrize("golden", sorted(CASES))
def test_dry_run_matches_golden(golden, capsys):
  assert cli.main(CASES[golden]) == 0
  text = capsys.readouterr().out
  path = GOLDEN / golden
  if os.environ.get("UPDATE_GOLDEN"):
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
  assert text == path.read_text()


def test_dry_run_does_not_import_the_registry_or_jax():
  """Dry runs pass the experiment name through: no experiments/, scaling or JAX import."""
  code = ("import sys; from launch import cli; "
          f"assert cli.main({CASES['launch_gke_dry_run.txt']!r}) == 0; "
          f"assert cli.main({CASES['launch_slurm_array_dry_run.txt']!r}) == 0; "
          "bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'experiments', 'scaling')]; "
          "assert not bad, bad")
  proc = subprocess.run([sys.executable, "-c", code], cwd=GOLDEN.parents[1], capture_output=True,
                        text=True)
  assert proc.returncode == 0, proc.stderr


def test_dry_run_commands_are_valid_shell():
  """Every printed command parses as shell (bash -n), continuation lines included."""
  for golden in CASES:
    text = (GOLDEN / golden).read_text()
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0, golden


@pytest.mark.parametrize("accelerator_type, chips", [
    ("v4-8", 4), ("v4-32", 16), ("v5p-128", 64), ("v5litepod-256", 256), ("v6e-64", 64),
    ("v3-8", 4),
])
def test_tpu_chips(accelerator_type, chips):
  assert tpu.tpu_chips(accelerator_type) == chips


@pytest.mark.parametrize("argv, words", [
    (["slurm", "--array", "2", "--dry-run", "--", "train", "--workdir", "x"], "sweep NAME"),
    (["gke", "--cluster", "c", "--tpu-type", "v5litepod-8", "--device-type", "h100-80gb-8",
      "--docker-image", "i", "--dry-run", *SWEEP_GS], "exactly one"),
    (["gke", "--cluster", "c", "--tpu-type", "v5litepod-8", "--dry-run", *SWEEP_GS],
     "--docker-image"),
    (["tpu", "--name", "n", "--zone", "z", "--accelerator-type", "v9-8", *CODE, "--dry-run",
      *SWEEP_GS], "expected FAMILY-SIZE"),
    (["tpu", "--name", "n", "--zone", "z", "--accelerator-type", "v4-8", *CODE, "--env", "1X=2",
      "--dry-run", *SWEEP_GS], "NAME=VALUE"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, words, capsys):
  assert cli.main(argv) == 2
  assert words in capsys.readouterr().err


def _git(repo, *args):
  subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                 check=True, capture_output=True)


def test_tpu_refuses_a_dirty_tree_unless_allowed(tmp_path, monkeypatch, capsys):
  _git(tmp_path, "init", "-q")
  (tmp_path / "a.py").write_text("x = 1\n")
  _git(tmp_path, "add", "a.py")
  _git(tmp_path, "commit", "-q", "-m", "c")
  _git(tmp_path, "remote", "add", "origin", "https://example.com/r.git")
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                        text=True).stdout.strip()
  monkeypatch.chdir(tmp_path)
  argv = ["tpu", "--name", "n", "--zone", "z", "--accelerator-type", "v4-8", "--dry-run",
          "--", "train", "--workdir", "gs://b/r"]
  assert cli.main(argv) == 0  # clean: HEAD and origin are shipped
  out = capsys.readouterr().out
  assert f"git checkout --quiet --detach {head}" in out and "https://example.com/r.git" in out
  (tmp_path / "a.py").write_text("x = 2\n")
  assert cli.main(argv) == 2
  assert "uncommitted changes" in capsys.readouterr().err
  assert cli.main(argv[:-4] + ["--allow-dirty"] + argv[-4:]) == 0
  assert head in capsys.readouterr().out


class FakeRunner:
  """Records commands; answers from a table of (argv word -> results)."""

  def __init__(self, answers):
    self.answers, self.calls = answers, []

  def __call__(self, argv, **kwargs):
    self.calls.append(" ".join(argv[3:6]))
    rc, out = self.answers.get(" ".join(argv[3:5]), [(0, "")]).pop(0)
    return subprocess.CompletedProcess(argv, rc, stdout=out, stderr="")


def _launch(**kwargs):
  return tpu.TpuLaunch(name="n", zone="z", accelerator_type="v4-8", scaling_args=("train",),
                       repo="r", commit="c" * 40, delete=True, **kwargs)


def test_execute_reuses_an_existing_slice_and_does_not_delete_it(capsys):
  runner = FakeRunner({"tpu-vm describe": [(0, "READY")]})
  assert plan.execute(tpu.build_plan(_launch()), run=runner) == 0
  assert runner.calls == ["tpu-vm describe n", "tpu-vm ssh n", "tpu-vm ssh n"]
  assert "skipped (exists, reused)" in capsys.readouterr().out


def test_execute_creates_waits_runs_and_deletes_after_a_failed_run():
  runner = FakeRunner({
      "queued-resources describe": [(1, ""), (0, "WAITING_FOR_RESOURCES"), (0, "ACTIVE")],
      "tpu-vm ssh": [(0, ""), (7, "")]})  # install works, the run fails with 7
  code = plan.execute(tpu.build_plan(_launch(queued=True)), run=runner, poll_seconds=0)
  assert code == 7
  assert runner.calls == [
      "queued-resources describe n", "queued-resources create n",
      "queued-resources describe n", "queued-resources describe n",
      "tpu-vm ssh n", "tpu-vm ssh n", "queued-resources delete n"]
