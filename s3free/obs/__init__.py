"""Observability: metrics, tracing and logging (the lowest layer: anything may import it)."""
