-- +goose Up
-- A claim checks campaign deliveries only against suppressions added since
-- they were materialised (materialisation honoured the older ones).
CREATE INDEX suppressions_created_idx ON suppressions(created_at);

-- +goose Down
DROP INDEX suppressions_created_idx;
