-- n8n as an input source (issue 13).

-- What the stored payload is: the raw execution JSON ('raw', CLI / HTTP ingest /
-- generator) or n8n's run data as n8n stored it ('n8n', flatted text).
ALTER TABLE execution_raw
    ADD COLUMN source_format TEXT NOT NULL DEFAULT 'raw'
        CHECK (source_format IN ('raw', 'n8n'));

-- The n8n catch-up's floor: every execution of the workflow with an id at or
-- below floor_id is finished and recorded here (or gone from n8n). It only
-- moves over a contiguous run of such ids, so it can never skip one that
-- finishes late (see services/etl/stage1/n8n_catchup.py).
CREATE TABLE n8n_catchup (
    source     TEXT PRIMARY KEY,  -- n8n database + workflow, e.g. "n8n:<workflow id>"
    floor_id   BIGINT NOT NULL DEFAULT 0 CHECK (floor_id >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
