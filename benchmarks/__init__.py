"""cdisc-pipe benchmarks (issue 9): ``python -m benchmarks.run``; results in ``benchmarks/results``."""
