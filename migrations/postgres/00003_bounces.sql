-- +goose Up
-- bounces records every hard bounce, soft bounce and complaint attributed
-- to a delivery (or, for a complaint that names no delivery, to a
-- subscriber). At most one row per delivery and kind, so a report delivered
-- twice changes nothing the second time.
CREATE TABLE bounces (
    id            BIGSERIAL PRIMARY KEY,
    delivery_id   BIGINT REFERENCES deliveries(id) ON DELETE SET NULL,
    campaign_id   BIGINT REFERENCES campaigns(id) ON DELETE SET NULL,
    subscriber_id BIGINT REFERENCES subscribers(id) ON DELETE SET NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint')),
    category      TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT '',
    diagnostic    TEXT NOT NULL DEFAULT '',
    remote_mta    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX bounces_delivery_kind_idx ON bounces(delivery_id, kind);
CREATE INDEX bounces_campaign_idx ON bounces(campaign_id, kind);
CREATE INDEX bounces_subscriber_idx ON bounces(subscriber_id, created_at);

-- Feedback loops quote the original Message-ID and nothing else we sent.
CREATE INDEX deliveries_message_id_idx ON deliveries(message_id) WHERE message_id <> '';

-- Deliveries that bounced (hard or soft) or were complained about, counted
-- once each, in the same transaction as the bounces row.
ALTER TABLE campaigns ADD COLUMN hard_bounces BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN soft_bounces BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN complaints BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN complaints;
ALTER TABLE campaigns DROP COLUMN soft_bounces;
ALTER TABLE campaigns DROP COLUMN hard_bounces;
DROP INDEX deliveries_message_id_idx;
DROP TABLE bounces;
