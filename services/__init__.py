"""The smokesignal services: etl (Stage 2), poller, gateway."""
