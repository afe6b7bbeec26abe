"""Helpers shared by the tests and the benchmarks: no test functions live here."""
