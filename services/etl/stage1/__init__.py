"""Stage 1: input sources record raw executions; the trigger enqueues Stage 2."""
