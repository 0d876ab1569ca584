-- +goose Up
-- The anniversary trigger: a date attribute's anniversary (trigger_attribute,
-- "YYYY-MM-DD" or "MM-DD"), trigger_days days before, at trigger_time
-- ("HH:MM", "" 09:00) on the subscriber's clock. It lets the same person
-- in every year, so a run is one person's pass through one occurrence
-- (the anniversary's year; 0 for the triggers that let a person in once)
-- and a send step's deliveries of occurrence n > 0 belong to a campaign
-- of their own (occurrence_of: the step's campaign, occurrence: n), which
-- keeps each delivery unique per campaign and subscriber, its own
-- Message-ID and its own tracking.
ALTER TABLE automations DROP CONSTRAINT automations_trigger_kind_check;
ALTER TABLE automations ADD CONSTRAINT automations_trigger_kind_check
    CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api', 'segment', 'campaign_event', 'attribute_changed', 'anniversary'));
ALTER TABLE automations ADD COLUMN trigger_time TEXT NOT NULL DEFAULT '';
ALTER TABLE automation_runs ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE automation_runs DROP CONSTRAINT automation_runs_automation_id_subscriber_id_key;
ALTER TABLE automation_runs ADD CONSTRAINT automation_runs_occurrence_key UNIQUE (automation_id, subscriber_id, occurrence);
ALTER TABLE campaigns ADD COLUMN occurrence_of BIGINT REFERENCES campaigns(id) ON DELETE SET NULL;
ALTER TABLE campaigns ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX campaigns_occurrence_idx ON campaigns(occurrence_of, occurrence);

-- +goose Down
DROP INDEX campaigns_occurrence_idx;
ALTER TABLE campaigns DROP COLUMN occurrence;
ALTER TABLE campaigns DROP COLUMN occurrence_of;
DELETE FROM automation_runs WHERE occurrence <> 0;
ALTER TABLE automation_runs DROP CONSTRAINT automation_runs_occurrence_key;
ALTER TABLE automation_runs ADD CONSTRAINT automation_runs_automation_id_subscriber_id_key UNIQUE (automation_id, subscriber_id);
ALTER TABLE automation_runs DROP COLUMN occurrence;
DELETE FROM automations WHERE trigger_kind = 'anniversary';
ALTER TABLE automations DROP COLUMN trigger_time;
ALTER TABLE automations DROP CONSTRAINT automations_trigger_kind_check;
ALTER TABLE automations ADD CONSTRAINT automations_trigger_kind_check
    CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api', 'segment', 'campaign_event', 'attribute_changed'));
