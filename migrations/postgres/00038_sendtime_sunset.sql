-- +goose Up
-- A snapshot list holds the people an audience matched at one moment
-- (a re-engagement or re-permission campaign's recipients): the system
-- fills it, no one opted into it, so it writes no consent rows and is
-- left out of coverage, public forms and the preference centre.
ALTER TABLE lists ADD COLUMN kind TEXT NOT NULL DEFAULT 'list' CHECK (kind IN ('list', 'snapshot'));

-- Send time by the subscriber's time zone: local_send_at "HH:MM" ('' sends
-- at once); the zone is the IANA name in attribute tz_attribute, else
-- tz_default. tz_invalid counts recipients whose zone was not a valid one.
ALTER TABLE campaigns ADD COLUMN local_send_at TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN tz_attribute TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN tz_default TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN tz_invalid BIGINT NOT NULL DEFAULT 0;

-- The sunset policy (one rule): who counts as inactive, what happens to
-- them, and the state of the current round (re-engagement campaign, its
-- snapshot list, when it began, the last run).
CREATE TABLE sunset_rules (
    id              BIGINT PRIMARY KEY,
    enabled         BOOLEAN NOT NULL DEFAULT FALSE,
    months          INTEGER NOT NULL,
    min_campaigns   INTEGER NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('unsubscribe', 'suppress')),
    grace_days      INTEGER NOT NULL,
    campaign_id     BIGINT REFERENCES campaigns(id) ON DELETE SET NULL,
    list_id         BIGINT REFERENCES lists(id) ON DELETE SET NULL,
    started_at      TIMESTAMPTZ,
    last_run_at     TIMESTAMPTZ,
    last_run_count  BIGINT NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE sunset_rules;
ALTER TABLE campaigns DROP COLUMN tz_invalid;
ALTER TABLE campaigns DROP COLUMN tz_default;
ALTER TABLE campaigns DROP COLUMN tz_attribute;
ALTER TABLE campaigns DROP COLUMN local_send_at;
ALTER TABLE lists DROP COLUMN kind;
