-- +goose Up
-- A refusal during delivery (5xx at RCPT, DATA or end of data) is recorded
-- as a bounce like one reported later; during_delivery tells them apart in
-- the reports ("refused while sending" or "bounce report").
ALTER TABLE bounces ADD COLUMN during_delivery INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE bounces DROP COLUMN during_delivery;
