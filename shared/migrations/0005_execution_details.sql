-- What operators need from every execution, kept in the database (issue 13):
-- every detection with its box, the capture time, the camera's device, the
-- model, the YOLO request, the image size, the Telegram message and the source
-- workflow's own status (n8n: success, error, canceled, crashed, ...).
--
-- Stage 1 fills captured_at, device_id and source_status (they are in the
-- envelope); Stage 2 fills the rest. All nullable: executions stored before
-- this migration, and sources that lack a field, keep an honest NULL.
ALTER TABLE executions
    -- [{"class": "smoke"|"fire", "confidence": 0..1,
    --   "bbox": {"x": px, "y": px, "width": px, "height": px}}, ...]
    ADD COLUMN detections          JSONB CHECK (detections IS NULL OR jsonb_typeof(detections) = 'array'),
    ADD COLUMN captured_at         TIMESTAMPTZ,
    ADD COLUMN device_id           TEXT,
    ADD COLUMN model_version       TEXT,
    ADD COLUMN request_id          TEXT,
    ADD COLUMN image_width         INTEGER CHECK (image_width >= 1),
    ADD COLUMN image_height        INTEGER CHECK (image_height >= 1),
    ADD COLUMN telegram_message_id BIGINT,
    ADD COLUMN source_status       TEXT,
    -- A WebP rendition of the original, beside image_path / thumbnail_path
    -- (relative to IMAGE_DIR).
    ADD COLUMN webp_path           TEXT;

-- Rows stored before: the workflow's status is the source status.
UPDATE executions SET source_status = status WHERE source_status IS NULL;
