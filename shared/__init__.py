"""Code shared by every smokesignal service: contracts, settings, bus, database, logging."""
