"""Baselines measured in the same run as orderdesk: eventsourcing, raw psycopg, pgbench."""
