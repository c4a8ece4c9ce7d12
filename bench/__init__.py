"""Benchmarks: each prints Audience's time beside hand-written SQL doing the same work."""
