"""Benchmarks: speed, memory and parity measurements, run as ``python -m tools.bench.NAME``."""
