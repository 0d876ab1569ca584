-- +goose Up
-- More automation triggers (entered a segment: trigger_segment_id; an
-- event on a campaign: trigger_campaign_id, trigger_event, trigger_url,
-- trigger_days; an attribute changed: trigger_attribute, trigger_value,
-- automation_attr_seen) and steps (put on or take off a list:
-- target_list_id; set an attribute: attr_key, attr_value; a branch on
-- segment membership: segment_id; notify a webhook: webhook_id).
ALTER TABLE automations DROP CONSTRAINT automations_trigger_kind_check;
ALTER TABLE automations ADD CONSTRAINT automations_trigger_kind_check
    CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api', 'segment', 'campaign_event', 'attribute_changed'));
ALTER TABLE automations ADD COLUMN trigger_segment_id BIGINT REFERENCES segments(id) ON DELETE SET NULL;
ALTER TABLE automations ADD COLUMN trigger_campaign_id BIGINT REFERENCES campaigns(id) ON DELETE SET NULL;
ALTER TABLE automations ADD COLUMN trigger_event TEXT NOT NULL DEFAULT '';
ALTER TABLE automations ADD COLUMN trigger_url TEXT NOT NULL DEFAULT '';
ALTER TABLE automations ADD COLUMN trigger_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE automations ADD COLUMN trigger_attribute TEXT NOT NULL DEFAULT '';
ALTER TABLE automations ADD COLUMN trigger_value TEXT;
ALTER TABLE automation_steps DROP CONSTRAINT automation_steps_kind_check;
ALTER TABLE automation_steps ADD CONSTRAINT automation_steps_kind_check
    CHECK (kind IN ('send', 'wait', 'branch', 'exit', 'list_add', 'list_remove', 'set_attribute', 'webhook'));
ALTER TABLE automation_steps ADD COLUMN target_list_id BIGINT REFERENCES lists(id) ON DELETE SET NULL;
ALTER TABLE automation_steps ADD COLUMN attr_key TEXT NOT NULL DEFAULT '';
ALTER TABLE automation_steps ADD COLUMN attr_value TEXT NOT NULL DEFAULT '';
ALTER TABLE automation_steps ADD COLUMN segment_id BIGINT REFERENCES segments(id) ON DELETE SET NULL;
ALTER TABLE automation_steps ADD COLUMN webhook_id BIGINT REFERENCES webhooks(id) ON DELETE SET NULL;

-- The attribute-changed trigger's last reading of each person's
-- attribute (NULL: absent), so a look finds who changed since.
CREATE TABLE automation_attr_seen (
    automation_id BIGINT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    value         TEXT,
    PRIMARY KEY (automation_id, subscriber_id)
);

-- +goose Down
DROP TABLE automation_attr_seen;
DELETE FROM automation_steps WHERE kind NOT IN ('send', 'wait', 'branch', 'exit');
DELETE FROM automations WHERE trigger_kind NOT IN ('list_confirmed', 'list_subscribed', 'api');
ALTER TABLE automation_steps DROP COLUMN webhook_id;
ALTER TABLE automation_steps DROP COLUMN segment_id;
ALTER TABLE automation_steps DROP COLUMN attr_value;
ALTER TABLE automation_steps DROP COLUMN attr_key;
ALTER TABLE automation_steps DROP COLUMN target_list_id;
ALTER TABLE automation_steps DROP CONSTRAINT automation_steps_kind_check;
ALTER TABLE automation_steps ADD CONSTRAINT automation_steps_kind_check
    CHECK (kind IN ('send', 'wait', 'branch', 'exit'));
ALTER TABLE automations DROP COLUMN trigger_value;
ALTER TABLE automations DROP COLUMN trigger_attribute;
ALTER TABLE automations DROP COLUMN trigger_days;
ALTER TABLE automations DROP COLUMN trigger_url;
ALTER TABLE automations DROP COLUMN trigger_event;
ALTER TABLE automations DROP COLUMN trigger_campaign_id;
ALTER TABLE automations DROP COLUMN trigger_segment_id;
ALTER TABLE automations DROP CONSTRAINT automations_trigger_kind_check;
ALTER TABLE automations ADD CONSTRAINT automations_trigger_kind_check
    CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api'));
