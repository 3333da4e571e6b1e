"""Benchmarks: they print figures; they assert nothing (tests do that)."""
