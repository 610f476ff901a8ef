-- Invalid messages in the event stream, copied to the dead-letter queue once.
--
-- Streams cannot dead-letter, so a gateway's live reader copies a message that
-- fails its contract to the dead-letter exchange. Every worker process of every
-- replica reads the stream live: without a claim the dead-letter queue got one
-- copy per worker. The reader whose INSERT wins (ON CONFLICT DO NOTHING) copies
-- it, inside the same transaction: a concurrent reader's INSERT waits for that
-- transaction, so it finds the row (copied) or, if the copy failed and rolled
-- back, takes over. Keyed by the stream position and the message's tag (the SSE
-- id's parts), so a recreated stream's offset 0 is another message.
CREATE TABLE stream_dead_letters (
    stream        TEXT NOT NULL,
    stream_offset BIGINT NOT NULL,
    tag           TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    message_id    TEXT,
    reason        TEXT NOT NULL,
    reader        TEXT NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, stream_offset, tag)
);
CREATE INDEX stream_dead_letters_recorded_at_idx ON stream_dead_letters (recorded_at);
