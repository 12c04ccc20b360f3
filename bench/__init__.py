"""Benchmarking and tuning: throughput comparisons, the top-N tuner and plots of benchmark records."""
