"""Benchmark of the CDS service as it runs: `python -m bench` (full) or `python -m bench --smoke`."""
