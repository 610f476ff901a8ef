-- n8n and raw ingest (CLI, HTTP, generator) share one id space: `executions.id`.
-- An id already taken by the other source is refused with a clear error in
-- rejected_inputs; for an n8n execution the catch-up would meet it every round
-- while its floor is below it, so such a refusal carries the execution id and is
-- recorded once per source (the partial unique index).
ALTER TABLE rejected_inputs ADD COLUMN execution_id BIGINT;

CREATE UNIQUE INDEX rejected_inputs_id_collision
    ON rejected_inputs (source, execution_id) WHERE execution_id IS NOT NULL;
