"""Benchmarks run by `make bench`: each prints a table and writes JSON under benchmarks/results/."""
