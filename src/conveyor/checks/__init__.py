"""Checks of data and models: schema inference and validation, drift, evaluation, gates.

Every check returns :class:`~conveyor.core.checks.CheckResult` values; whether a failed check
blocks is the gate's policy, decided by the caller, and every result is recorded.
Checks compute on values (DataFrames, arrays, models); they read no stores themselves.
"""
