"""The outbox relay: publishes outbox rows with publisher confirms (woken by `shared.notify`)."""
