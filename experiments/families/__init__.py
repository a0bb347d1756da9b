"""Experiment families: one file per family, each registering its builder.

Every module of this package is imported when the registry is first
consulted (:mod:`experiments.registry`), so adding a family is adding a
file; each builder returns one :class:`experiments.registry.Family`.
"""
