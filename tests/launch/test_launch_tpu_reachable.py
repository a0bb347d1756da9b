"""``scaling launch tpu`` refuses code the workers cannot clone and a local workdir on a
multi-host slice (exit 2, before anything is created); single-host local workdirs pass."""

import subprocess

import pytest

from launch import cli, plan, tpu

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HTTPS = "https://github.com/example/scaling.git"


def _tpu(accelerator_type, workdir, repo=HTTPS, *extra):
  return ["tpu", "--name", "n", "--zone", "z", "--accelerator-type", accelerator_type,
          "--repo", repo, "--commit", COMMIT, *extra, "--dry-run",
          "--", "sweep", "chinchilla_isoflop", *workdir]


@pytest.mark.parametrize("accelerator_type, multi_host", [
    ("v2-8", False), ("v3-8", False), ("v3-32", True), ("v4-8", False), ("v4-16", True),
    ("v4-32", True), ("v5p-8", False), ("v5p-16", True), ("v5litepod-1", False),
    ("v5litepod-4", False), ("v5litepod-8", False), ("v5litepod-16", True),
    ("v5litepod-256", True), ("v6e-8", False), ("v6e-16", True),
])
def test_tpu_multi_host(accelerator_type, multi_host):
  assert tpu.tpu_multi_host(accelerator_type) is multi_host


@pytest.mark.parametrize("workdir", [["--workdir", "/tmp/sweeps/x"], ["--workdir=runs/x"]])
def test_local_workdir_is_refused_on_multi_host_slices_only(workdir, capsys):
  for accelerator_type in ("v5litepod-16", "v4-16", "v5p-128", "v6e-64"):
    assert cli.main(_tpu(accelerator_type, workdir)) == 2, accelerator_type
    captured = capsys.readouterr()
    assert captured.out == ""  # no plan printed: nothing would be created
    err = captured.err
    assert err.startswith("scaling launch tpu: error: --workdir")
    assert "share no disk" in err and "gs://" in err and accelerator_type in err
  for accelerator_type in ("v5litepod-8", "v4-8", "v5p-8", "v6e-4"):  # one VM, one disk
    assert cli.main(_tpu(accelerator_type, workdir)) == 0, accelerator_type
    assert workdir[-1] in capsys.readouterr().out
  # a gs:// workdir is what a multi-host slice needs
  assert cli.main(_tpu("v5litepod-16", ["--workdir", "gs://b/sweeps/x"])) == 0


@pytest.mark.parametrize("repo", ["/srv/git/scaling.git", "file:///srv/git/scaling.git",
                                  "./scaling", "../scaling.git", "~/scaling", "scaling"])
def test_repo_on_this_machine_is_refused_on_any_slice(repo, capsys):
  for accelerator_type in ("v5litepod-8", "v5litepod-16"):
    assert cli.main(_tpu(accelerator_type, ["--workdir", "gs://b/x"], repo)) == 2
    err = capsys.readouterr().err
    assert "scaling launch tpu: error:" in err and repr(repo) in err
    assert "cannot reach" in err and "--repo URL" in err and "(--repo)" in err
  for remote in (HTTPS, "ssh://git@example.com/scaling.git", "git@github.com:me/scaling.git",
                 "git://example.com/scaling.git"):
    assert cli.main(_tpu("v5litepod-16", ["--workdir", "gs://b/x"], remote)) == 0, remote
    assert remote in capsys.readouterr().out


def _git(repo, *args):
  subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                 check=True, capture_output=True)


def test_origin_that_is_a_local_path_is_refused(tmp_path, monkeypatch, capsys):
  """The default repo is origin's URL; a clone of a local repository has a path there."""
  upstream, clone = tmp_path / "upstream", tmp_path / "clone"
  upstream.mkdir()
  _git(upstream, "init", "-q")
  (upstream / "a.py").write_text("x = 1\n")
  _git(upstream, "add", "a.py")
  _git(upstream, "commit", "-q", "-m", "c")
  _git(tmp_path, "clone", "-q", str(upstream), str(clone))
  monkeypatch.chdir(clone)
  argv = ["tpu", "--name", "n", "--zone", "z", "--accelerator-type", "v4-8", "--dry-run",
          "--", "train", "--workdir", "gs://b/r"]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert f"{str(upstream)!r} (the git remote 'origin')" in err and "cannot reach" in err
  _git(clone, "remote", "set-url", "origin", HTTPS)  # pushed somewhere reachable: fine
  assert cli.main(argv) == 0
  assert HTTPS in capsys.readouterr().out


def test_an_existing_relative_path_is_local(tmp_path):
  (tmp_path / "code").mkdir()
  assert plan.is_local_repo("code", cwd=str(tmp_path))
  assert not plan.is_local_repo("example.com:code", cwd=str(tmp_path))  # scp-like
  (tmp_path / "example.com:code").mkdir()  # git would clone this path: local
  assert plan.is_local_repo("example.com:code", cwd=str(tmp_path))


def test_scaling_flag_reads_both_forms_and_the_last_wins():
  assert plan.scaling_flag(["train", "--workdir", "a"], "--workdir") == "a"
  assert plan.scaling_flag(["train", "--workdir=gs://b"], "--workdir") == "gs://b"
  assert plan.scaling_flag(["--workdir", "a", "--workdir=b"], "--workdir") == "b"
  assert plan.scaling_flag(["check", "sweep", "x"], "--workdir") is None
  assert plan.scaling_flag(["train", "--workdirs", "a"], "--workdir") is None
