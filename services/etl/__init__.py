"""Stage 1 ingest and the Stage 2 ETL service (workers + outbox relay)."""
