-- The camera sequence (detail view: previous/next frame, hold-to-play) follows when
-- the camera took each frame, not when its run reached us: a camera that uploads a
-- backlog after an outage would otherwise show its frames out of capture order.
-- Sources without a capture time fall back to started_at (always set).
--
-- An expression index rather than a stored generated column: adding that column
-- would rewrite the whole table under an exclusive lock; this only builds an index.
-- The key is written once more, in services/gateway/queries.py (_SEQUENCE_KEY), and
-- must stay identical for the planner to use this index (test_triage checks the plan).
CREATE INDEX executions_camera_capture_idx
    ON executions (camera_id, coalesce(captured_at, started_at), id);

-- executions_camera_time_idx (camera_id, started_at, id) stays: the statistics read a
-- camera's partial hours through it.
