-- +goose Up
-- Why a campaign is paused when Herald paused it by itself (automatic
-- protection from provider signals: complaints, hard bounces,
-- deferrals). '' for a pause by a person; cleared on resume.
ALTER TABLE campaigns ADD COLUMN pause_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE campaigns DROP COLUMN pause_reason;
