-- +goose Up
-- Materialising a campaign reads a segment's engagement conditions (opened
-- or clicked by a person, in the last N days) for one batch of people at
-- a time, a range of subscriber ids. events_engagement_idx orders a kind's
-- events by time, so every batch read all of the period's events again: a
-- sparse segment of a million people read them two hundred times. This
-- one orders them by person, so a batch reads its own people's events.
CREATE INDEX events_people_idx ON events(kind, machine, subscriber_id, created_at);

-- The width of the next batch's range of subscriber ids (0: the batch
-- size). It grows while batches come back with few people (a small list
-- among many subscribers, a narrow segment) and shrinks when one comes
-- back full, so that a batch writes about the batch size whatever the
-- audience's share of the ids.
ALTER TABLE campaigns ADD COLUMN materialize_span BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN materialize_span;
DROP INDEX events_people_idx;
