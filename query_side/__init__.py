"""The query side: the read API over the ``read`` schema and the Redis cache (DESIGN.md §5)."""
