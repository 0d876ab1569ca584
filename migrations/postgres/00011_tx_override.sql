-- +goose Up
-- override_suppression marks a transactional message whose sender said
-- explicitly that it must reach the address even if it is suppressed
-- (password resets, receipts). It is kept on the delivery so every
-- override stays on record.
ALTER TABLE deliveries ADD COLUMN override_suppression BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN override_suppression;
