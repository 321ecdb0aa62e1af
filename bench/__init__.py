"""Benchmarks (`make bench`): each prints the measured figures side by side with its baseline."""
