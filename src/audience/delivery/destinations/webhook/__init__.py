"""HTTP endpoints that take records as JSON batches, signed and retried idempotently."""
