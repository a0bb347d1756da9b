"""launch.distributed.resolve: how each environment maps to jax.distributed settings (pure)."""

import pytest

from launch import distributed
from launch.distributed import DistributedError, DistributedSetup, resolve
from scaling import agree

SLURM_STEP = {  # srun step of a 2-node job with 8 tasks per node
    "SLURM_JOB_ID": "12345", "SLURM_NTASKS": "16", "SLURM_PROCID": "11",
    "SLURM_LOCALID": "3", "SLURM_STEP_NODELIST": "gpu[003-004]",
    "SLURM_JOB_NODELIST": "gpu[003-004]", "SLURM_STEP_TASKS_PER_NODE": "8(x2)",
    "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
}


def test_no_environment_is_a_single_process():
  assert resolve(environ={}) == DistributedSetup("none")
  assert resolve(environ={"SLURM_NTASKS": "16"}) == DistributedSetup("none")  # not in srun


def test_flags_win_over_environment():
  setup = resolve("10.0.0.1:1234", 4, 2, [0, 1], environ=SLURM_STEP)
  assert setup == DistributedSetup("flags", "10.0.0.1:1234", 4, 2, (0, 1))
  assert resolve(num_processes=1, process_id=0, environ=SLURM_STEP).mode == "none"


def test_local_launcher_environment():
  env = {"SCALING_DISTRIBUTED": "env", "SCALING_COORDINATOR_ADDRESS": "127.0.0.1:5555",
         "SCALING_NUM_PROCESSES": "2", "SCALING_PROCESS_ID": "1"}
  assert resolve(environ=env) == DistributedSetup("env", "127.0.0.1:5555", 2, 1, None)
  del env["SCALING_DISTRIBUTED"]  # detected from SCALING_NUM_PROCESSES
  assert resolve(environ=env).process_id == 1
  env["SCALING_LOCAL_DEVICE_IDS"] = "2,3"
  assert resolve(environ=env).local_device_ids == (2, 3)
  assert resolve(environ={"SCALING_NUM_PROCESSES": "1"}).mode == "none"


def test_slurm_one_process_per_gpu():
  env = dict(SLURM_STEP, SCALING_COORDINATOR_ADDRESS="gpu003:61497")
  assert resolve(environ=env) == DistributedSetup("slurm", "gpu003:61497", 16, 11, (3,))


def test_slurm_coordinator_matches_jax_rule(monkeypatch):
  """Without our variable, the coordinator is the one JAX's own Slurm detection picks."""
  from jax._src.clusters import slurm_cluster
  for key, value in SLURM_STEP.items():
    monkeypatch.setenv(key, value)
  monkeypatch.delenv("JAX_COORDINATOR_PORT", raising=False)
  expected = slurm_cluster.SlurmCluster.get_coordinator_address(None, None)
  assert expected == "gpu003:61497"  # 61440 + 12345 % 4096
  assert resolve(environ=SLURM_STEP).coordinator_address == expected


def test_slurm_one_process_per_node_takes_all_gpus():
  env = dict(SLURM_STEP, SLURM_NTASKS="2", SLURM_PROCID="1", SLURM_LOCALID="0",
             SLURM_STEP_TASKS_PER_NODE="1(x2)")
  setup = resolve(environ=env)
  assert (setup.num_processes, setup.process_id, setup.local_device_ids) == (2, 1, None)
  # Slurm bound one GPU to each task: that GPU (None: all visible), not SLURM_LOCALID.
  assert resolve(environ=dict(SLURM_STEP, CUDA_VISIBLE_DEVICES="5")).local_device_ids is None
  # A single task is a single process.
  assert resolve(environ=dict(SLURM_STEP, SLURM_NTASKS="1", SLURM_PROCID="0",
                              SCALING_DISTRIBUTED="slurm")).mode == "none"


def test_tpu_and_gke_leave_detection_to_jax():
  assert resolve(environ={"SCALING_DISTRIBUTED": "tpu"}) == DistributedSetup(
      "tpu", None, None, None, None)
  gke = {"TPU_WORKER_HOSTNAMES": "w-0.svc,w-1.svc,w-2.svc,w-3.svc", "TPU_WORKER_ID": "2"}
  assert resolve(environ=gke).mode == "gke"
  assert resolve(environ={"TPU_WORKER_HOSTNAMES": "localhost"}).mode == "none"


@pytest.mark.parametrize("kwargs, environ, words", [
    ({}, {"SCALING_DISTRIBUTED": "mpi"}, "use one of"),
    ({}, {"SCALING_NUM_PROCESSES": "2", "SCALING_PROCESS_ID": "0"}, "SCALING_COORDINATOR_ADDRESS"),
    ({}, {"SCALING_NUM_PROCESSES": "2", "SCALING_COORDINATOR_ADDRESS": "h:1"}, "SCALING_PROCESS_ID"),
    ({}, {"SCALING_NUM_PROCESSES": "2", "SCALING_PROCESS_ID": "2",
          "SCALING_COORDINATOR_ADDRESS": "h:1"}, "must be in [0, 2)"),
    ({}, {"SCALING_NUM_PROCESSES": "two"}, "not an integer"),
    ({"num_processes": 2}, {}, "together"),
    ({"num_processes": 2, "process_id": 0}, {}, "coordinator_address"),
])
def test_bad_settings_name_the_fix(kwargs, environ, words):
  with pytest.raises(DistributedError, match=words.replace("[", r"\[").replace(")", r"\)")):
    resolve(**kwargs, environ=environ)


@pytest.mark.parametrize("nodelist, host", [
    ("node001", "node001"), ("node001,node002", "node001"),
    ("gpu[003-010,012],cpu1", "gpu003"), ("gpu[007,009-010]", "gpu007"),
    ("a[1-2]-b[5-6],c", "a1-b5"),
])
def test_first_slurm_host(nodelist, host):
  assert distributed.first_slurm_host(nodelist) == host


def test_single_process_helpers_need_no_collectives():
  assert agree.broadcast({"skip": True}) == {"skip": True}
  assert agree.any_process(False) is False
  assert agree.StopSignal().agreed() is False
  assert distributed.finish(0) == 0
