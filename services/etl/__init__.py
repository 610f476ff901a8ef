"""The ETL service: `stage1` (input sources), `stage2` (workers), `outbox` (relay + listener)."""
