-- 0090 dropped executions_camera_time_idx as the camera sequence's old index, but the
-- statistics use it too: they read the partial hours at a range's ends from
-- `executions`, and with a camera filter this index answers them from that camera's
-- rows alone (an index-only scan) instead of every camera's rows of those hours.
CREATE INDEX IF NOT EXISTS executions_camera_time_idx ON executions (camera_id, started_at, id);
