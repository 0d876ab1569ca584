-- +goose Up
-- Why the classifier decided a bounce: the row of its precedence table and
-- the reason in words ("R8 unknown recipient, recipient-stage evidence: …"),
-- shown per bounce on Deliverability → Bounces so a user can see why an
-- address was suppressed. Empty for rows recorded before this migration.
ALTER TABLE bounces ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE bounces DROP COLUMN reason;
