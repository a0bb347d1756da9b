"""Experiment registry, sweep generators and the sweep runner.

An *experiment* is a named family of runs (one file per family in this
package, registered with :func:`experiments.registry.register`); the sweep
runner (:mod:`experiments.runner`) trains its runs into a sweep directory and
hands the finished tables to :mod:`analysis`. Importing this package does no
work: experiment files are imported when the registry is first consulted.
"""
