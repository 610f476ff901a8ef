"""The gateway: bus events → Server-Sent Events, the REST API and the dashboard."""
