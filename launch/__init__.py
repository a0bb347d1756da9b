"""Getting runs onto machines: multi-host initialisation and launchers.

* :mod:`launch.distributed`: the one explicit ``initialize()`` that entry points
  call (from flags, the local launcher's environment, Slurm, TPU VMs, GKE, or
  nothing for a single process), and process-0 decisions shared by all.
* :mod:`launch.local`: P real JAX processes on localhost (CPU collectives: gloo).
* :mod:`launch.tpu`, :mod:`launch.slurm`, :mod:`launch.gke`: submission to TPU
  VMs / queued resources (gcloud), Slurm (sbatch) and GKE (xpk).
* :mod:`launch.cli`: ``scaling launch {local,tpu,slurm,gke} ...``.

Importing this package does no work (no device queries, no environment changes).
"""
