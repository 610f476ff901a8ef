"""The outbox relay (publishes outbox rows with publisher confirms) and the NOTIFY listener."""
