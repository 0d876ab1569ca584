-- +goose Up
-- Automations: a trigger and ordered steps, versioned. Each person's place
-- in an automation is one run row (one per automation and subscriber); the
-- engine moves due runs on set-based, and a send step's mail is a
-- delivery row of the step's own campaign (campaigns.automation_id), so
-- the unique (campaign, subscriber) delivery keeps a step from being sent
-- twice and the mailer claims, shapes, signs, tracks and reports it like
-- any campaign.
CREATE TABLE automations (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused')),
    trigger_kind      TEXT NOT NULL CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api')),
    list_id           INTEGER REFERENCES lists(id) ON DELETE SET NULL,
    exit_attribute    TEXT NOT NULL DEFAULT '',
    exit_value        TEXT NOT NULL DEFAULT '',
    tz_attribute      TEXT NOT NULL DEFAULT '',
    tz_default        TEXT NOT NULL DEFAULT '',
    from_name         TEXT NOT NULL DEFAULT '',
    from_email        TEXT NOT NULL DEFAULT '',
    version           INTEGER NOT NULL DEFAULT 1,
    test_wait_seconds INTEGER NOT NULL DEFAULT 5,
    entered_through   DATETIME,
    activated_at      DATETIME,
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);

-- One step of one version. Positions count from 1. A branch's targets:
-- 0 the next step, n step n, -1 the end.
CREATE TABLE automation_steps (
    id            INTEGER PRIMARY KEY,
    automation_id INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('send', 'wait', 'branch', 'exit')),
    campaign_id   INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    wait_days     INTEGER NOT NULL DEFAULT 0,
    wait_seconds  INTEGER NOT NULL DEFAULT 0,
    wait_until    TEXT NOT NULL DEFAULT '',
    wait_weekday  INTEGER NOT NULL DEFAULT -1,
    cond          TEXT NOT NULL DEFAULT '',
    cond_step     INTEGER NOT NULL DEFAULT 0,
    cond_key      TEXT NOT NULL DEFAULT '',
    cond_value    TEXT NOT NULL DEFAULT '',
    then_step     INTEGER NOT NULL DEFAULT 0,
    else_step     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (automation_id, version, position)
);

CREATE TABLE automation_runs (
    id            INTEGER PRIMARY KEY,
    automation_id INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    step          INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('active', 'done', 'exited')),
    exit_reason   TEXT NOT NULL DEFAULT '',
    due_at        DATETIME NOT NULL,
    test          BOOLEAN NOT NULL DEFAULT 0,
    entered_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL,
    UNIQUE (automation_id, subscriber_id)
);
CREATE INDEX automation_runs_due_idx ON automation_runs(automation_id, state, version, step, due_at);
CREATE INDEX automation_runs_subscriber_idx ON automation_runs(subscriber_id);

-- Who passed each step (once per person and step): the builder's per-step
-- counts and a test run's path.
CREATE TABLE automation_passes (
    step_id       INTEGER NOT NULL REFERENCES automation_steps(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    automation_id INTEGER NOT NULL,
    passed_at     DATETIME NOT NULL,
    PRIMARY KEY (step_id, subscriber_id)
);
CREATE INDEX automation_passes_subscriber_idx ON automation_passes(subscriber_id);

-- The triggers read the people who joined a list since their last look,
-- by this index, not the whole list every few seconds.
CREATE INDEX subscriptions_list_updated_idx ON subscriptions(list_id, updated_at);

-- A send step's campaign belongs to its automation: hidden from the
-- campaign list, running while the automation is active, never finished.
ALTER TABLE campaigns ADD COLUMN automation_id INTEGER REFERENCES automations(id) ON DELETE SET NULL;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN automation_id;
DROP INDEX subscriptions_list_updated_idx;
DROP TABLE automation_passes;
DROP TABLE automation_runs;
DROP TABLE automation_steps;
DROP TABLE automations;
