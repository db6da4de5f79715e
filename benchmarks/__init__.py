"""Benchmarks that print figures for this machine (not run by the test suite)."""
