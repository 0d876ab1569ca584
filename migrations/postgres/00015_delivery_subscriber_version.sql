-- +goose Up
-- The subscriber's updated_at as materialisation read it. A claim looks a
-- campaign row's address up against every suppression only when the
-- subscriber has changed since (a new address may have been suppressed
-- long ago); comparing this copy with the current value says so exactly,
-- where comparing times needed a margin for clocks and transactions in
-- flight and sent every list edited in the minute before its campaign
-- through the full check. Rows written before have NULL: always checked.
ALTER TABLE deliveries ADD COLUMN subscriber_updated_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN subscriber_updated_at;
