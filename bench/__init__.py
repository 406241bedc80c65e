"""Benchmarks: ``python -m bench`` runs every scenario beside its baselines (docs/benchmarks.md)."""
