"""The relationship model: identity, interactions and per-person statistics.

Pure functions of raw records and config: no I/O here except in
:mod:`kithkeep.model.analyze`, which reads the store and writes derived data.
"""
