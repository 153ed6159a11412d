"""Developer tools: benchmarks and scripts, run as `python -m tools.NAME`."""
