-- +goose Up
-- Segments: saved audiences defined by conditions (models/segment.go).
CREATE TABLE segments (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    conditions TEXT NOT NULL DEFAULT '{}',
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX segments_name_idx ON segments(lower(name));

-- A campaign goes to its lists and its segments, minus its exclusions.
CREATE TABLE campaign_segments (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    segment_id  INTEGER NOT NULL REFERENCES segments(id),
    PRIMARY KEY (campaign_id, segment_id)
);
CREATE TABLE campaign_exclusions (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    list_id     INTEGER REFERENCES lists(id) ON DELETE CASCADE,
    segment_id  INTEGER REFERENCES segments(id),
    CHECK ((list_id IS NULL) <> (segment_id IS NULL))
);
CREATE UNIQUE INDEX campaign_exclusions_list_idx ON campaign_exclusions(campaign_id, list_id) WHERE list_id IS NOT NULL;
CREATE UNIQUE INDEX campaign_exclusions_segment_idx ON campaign_exclusions(campaign_id, segment_id) WHERE segment_id IS NOT NULL;

-- Engagement conditions (opened or clicked by a person, in the last N
-- days) read people's events of a kind by time, subscriber included.
CREATE INDEX events_engagement_idx ON events(kind, machine, created_at, subscriber_id);

-- +goose Down
DROP INDEX events_engagement_idx;
DROP TABLE campaign_exclusions;
DROP TABLE campaign_segments;
DROP TABLE segments;
