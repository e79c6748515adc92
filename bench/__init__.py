"""The benchmarks: `python -m bench` measures Crane against its baselines and writes `bench/results/`."""
