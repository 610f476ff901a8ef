-- Gateway REST filters (GET /api/executions): with (filter column, id DESC) a
-- filtered newest-first page reads O(page) index entries, however rare the value.
-- camera uses executions_camera_id_idx from 0001 (also for the camera list).
CREATE INDEX executions_alert_level_idx ON executions (alert_level, id DESC)
    WHERE alert_level IS NOT NULL;
CREATE INDEX executions_processing_stage_idx ON executions (processing_stage, id DESC);
CREATE INDEX executions_has_smoke_idx ON executions (has_smoke, id DESC)
    WHERE has_smoke IS NOT NULL;
