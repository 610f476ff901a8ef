-- A first version of 0090 dropped executions_camera_time_idx as the camera sequence's
-- old index; this puts it back where that version ran (elsewhere it is still there,
-- from 0020, and this does nothing). The statistics use it: they read the partial
-- hours at a range's ends from `executions`, and with a camera filter this index
-- answers them from that camera's rows alone (an index-only scan) instead of every
-- camera's rows of those hours.
CREATE INDEX IF NOT EXISTS executions_camera_time_idx ON executions (camera_id, started_at, id);
