"""Projections: the gap-safe reader, the runner, the read models, the worker and rebuild."""
