-- +goose Up
-- The anniversary trigger: a date attribute's anniversary (trigger_attribute,
-- "YYYY-MM-DD" or "MM-DD"), trigger_days days before, at trigger_time
-- ("HH:MM", "" 09:00) on the subscriber's clock. It lets the same person
-- in every year, so a run is one person's pass through one occurrence
-- (the anniversary's year; 0 for the triggers that let a person in once)
-- and a send step's deliveries of occurrence n > 0 belong to a campaign
-- of their own (occurrence_of: the step's campaign, occurrence: n), which
-- keeps each delivery unique per campaign and subscriber, its own
-- Message-ID and its own tracking. SQLite cannot change a CHECK nor a
-- UNIQUE, so the automation tables are rebuilt as in migration 44: every
-- row kept aside first and put back, children dropped before parents.
CREATE TABLE keep_automations AS SELECT * FROM automations;
CREATE TABLE keep_steps AS SELECT * FROM automation_steps;
CREATE TABLE keep_runs AS SELECT * FROM automation_runs;
CREATE TABLE keep_passes AS SELECT * FROM automation_passes;
CREATE TABLE keep_attr_seen AS SELECT * FROM automation_attr_seen;
CREATE TABLE keep_campaigns AS SELECT id, automation_id FROM campaigns WHERE automation_id IS NOT NULL;
DROP TABLE automation_attr_seen;
DROP TABLE automation_passes;
DROP TABLE automation_runs;
DROP TABLE automation_steps;
DROP TABLE automations;
CREATE TABLE automations (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused')),
    trigger_kind      TEXT NOT NULL CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api', 'segment', 'campaign_event', 'attribute_changed', 'anniversary')),
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
    trigger_segment_id  INTEGER REFERENCES segments(id) ON DELETE SET NULL,
    trigger_campaign_id INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    trigger_event       TEXT NOT NULL DEFAULT '',
    trigger_url         TEXT NOT NULL DEFAULT '',
    trigger_days        INTEGER NOT NULL DEFAULT 0,
    trigger_attribute   TEXT NOT NULL DEFAULT '',
    trigger_value       TEXT,
    trigger_time        TEXT NOT NULL DEFAULT '',
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);
CREATE TABLE automation_steps (
    id            INTEGER PRIMARY KEY,
    automation_id INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('send', 'wait', 'branch', 'exit', 'list_add', 'list_remove', 'set_attribute', 'webhook')),
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
    target_list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
    attr_key       TEXT NOT NULL DEFAULT '',
    attr_value     TEXT NOT NULL DEFAULT '',
    segment_id     INTEGER REFERENCES segments(id) ON DELETE SET NULL,
    webhook_id     INTEGER REFERENCES webhooks(id) ON DELETE SET NULL,
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
    occurrence    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (automation_id, subscriber_id, occurrence)
);
CREATE TABLE automation_passes (
    step_id       INTEGER NOT NULL REFERENCES automation_steps(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    automation_id INTEGER NOT NULL,
    passed_at     DATETIME NOT NULL,
    PRIMARY KEY (step_id, subscriber_id)
);
CREATE TABLE automation_attr_seen (
    automation_id INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    value         TEXT,
    PRIMARY KEY (automation_id, subscriber_id)
);
CREATE INDEX automation_runs_due_idx ON automation_runs(automation_id, state, version, step, due_at);
CREATE INDEX automation_runs_subscriber_idx ON automation_runs(subscriber_id);
CREATE INDEX automation_passes_subscriber_idx ON automation_passes(subscriber_id);
INSERT INTO automations (id, name, status, trigger_kind, list_id, exit_attribute, exit_value, tz_attribute, tz_default, from_name, from_email, version, test_wait_seconds, entered_through, activated_at, trigger_segment_id, trigger_campaign_id, trigger_event, trigger_url, trigger_days, trigger_attribute, trigger_value, created_at, updated_at)
    SELECT id, name, status, trigger_kind, list_id, exit_attribute, exit_value, tz_attribute, tz_default, from_name, from_email, version, test_wait_seconds, entered_through, activated_at, trigger_segment_id, trigger_campaign_id, trigger_event, trigger_url, trigger_days, trigger_attribute, trigger_value, created_at, updated_at FROM keep_automations;
INSERT INTO automation_steps SELECT * FROM keep_steps;
INSERT INTO automation_runs (id, automation_id, subscriber_id, version, step, state, exit_reason, due_at, test, entered_at, updated_at)
    SELECT id, automation_id, subscriber_id, version, step, state, exit_reason, due_at, test, entered_at, updated_at FROM keep_runs;
INSERT INTO automation_passes SELECT * FROM keep_passes;
INSERT INTO automation_attr_seen SELECT * FROM keep_attr_seen;
UPDATE campaigns SET automation_id = (SELECT k.automation_id FROM keep_campaigns k WHERE k.id = campaigns.id)
    WHERE id IN (SELECT id FROM keep_campaigns);
DROP TABLE keep_automations;
DROP TABLE keep_steps;
DROP TABLE keep_runs;
DROP TABLE keep_passes;
DROP TABLE keep_attr_seen;
DROP TABLE keep_campaigns;

ALTER TABLE campaigns ADD COLUMN occurrence_of INTEGER REFERENCES campaigns(id) ON DELETE SET NULL;
ALTER TABLE campaigns ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX campaigns_occurrence_idx ON campaigns(occurrence_of, occurrence);

-- +goose Down
DROP INDEX campaigns_occurrence_idx;
ALTER TABLE campaigns DROP COLUMN occurrence;
ALTER TABLE campaigns DROP COLUMN occurrence_of;
CREATE TABLE keep_automations AS SELECT * FROM automations WHERE trigger_kind <> 'anniversary';
CREATE TABLE keep_steps AS SELECT * FROM automation_steps;
CREATE TABLE keep_runs AS SELECT * FROM automation_runs WHERE occurrence = 0;
CREATE TABLE keep_passes AS SELECT * FROM automation_passes;
CREATE TABLE keep_attr_seen AS SELECT * FROM automation_attr_seen;
CREATE TABLE keep_campaigns AS SELECT id, automation_id FROM campaigns WHERE automation_id IS NOT NULL;
DROP TABLE automation_attr_seen;
DROP TABLE automation_passes;
DROP TABLE automation_runs;
DROP TABLE automation_steps;
DROP TABLE automations;
CREATE TABLE automations (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused')),
    trigger_kind      TEXT NOT NULL CHECK (trigger_kind IN ('list_confirmed', 'list_subscribed', 'api', 'segment', 'campaign_event', 'attribute_changed')),
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
    trigger_segment_id  INTEGER REFERENCES segments(id) ON DELETE SET NULL,
    trigger_campaign_id INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    trigger_event       TEXT NOT NULL DEFAULT '',
    trigger_url         TEXT NOT NULL DEFAULT '',
    trigger_days        INTEGER NOT NULL DEFAULT 0,
    trigger_attribute   TEXT NOT NULL DEFAULT '',
    trigger_value       TEXT,
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);
CREATE TABLE automation_steps (
    id            INTEGER PRIMARY KEY,
    automation_id INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('send', 'wait', 'branch', 'exit', 'list_add', 'list_remove', 'set_attribute', 'webhook')),
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
    target_list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
    attr_key       TEXT NOT NULL DEFAULT '',
    attr_value     TEXT NOT NULL DEFAULT '',
    segment_id     INTEGER REFERENCES segments(id) ON DELETE SET NULL,
    webhook_id     INTEGER REFERENCES webhooks(id) ON DELETE SET NULL,
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
CREATE TABLE automation_passes (
    step_id       INTEGER NOT NULL REFERENCES automation_steps(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    automation_id INTEGER NOT NULL,
    passed_at     DATETIME NOT NULL,
    PRIMARY KEY (step_id, subscriber_id)
);
CREATE TABLE automation_attr_seen (
    automation_id INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    value         TEXT,
    PRIMARY KEY (automation_id, subscriber_id)
);
CREATE INDEX automation_runs_due_idx ON automation_runs(automation_id, state, version, step, due_at);
CREATE INDEX automation_runs_subscriber_idx ON automation_runs(subscriber_id);
CREATE INDEX automation_passes_subscriber_idx ON automation_passes(subscriber_id);
INSERT INTO automations (id, name, status, trigger_kind, list_id, exit_attribute, exit_value, tz_attribute, tz_default, from_name, from_email, version, test_wait_seconds, entered_through, activated_at, trigger_segment_id, trigger_campaign_id, trigger_event, trigger_url, trigger_days, trigger_attribute, trigger_value, created_at, updated_at)
    SELECT id, name, status, trigger_kind, list_id, exit_attribute, exit_value, tz_attribute, tz_default, from_name, from_email, version, test_wait_seconds, entered_through, activated_at, trigger_segment_id, trigger_campaign_id, trigger_event, trigger_url, trigger_days, trigger_attribute, trigger_value, created_at, updated_at FROM keep_automations;
INSERT INTO automation_steps SELECT * FROM keep_steps WHERE automation_id IN (SELECT id FROM automations);
INSERT INTO automation_runs (id, automation_id, subscriber_id, version, step, state, exit_reason, due_at, test, entered_at, updated_at)
    SELECT id, automation_id, subscriber_id, version, step, state, exit_reason, due_at, test, entered_at, updated_at FROM keep_runs
    WHERE automation_id IN (SELECT id FROM automations);
INSERT INTO automation_passes SELECT * FROM keep_passes WHERE step_id IN (SELECT id FROM automation_steps);
INSERT INTO automation_attr_seen SELECT * FROM keep_attr_seen WHERE automation_id IN (SELECT id FROM automations);
UPDATE campaigns SET automation_id = (SELECT k.automation_id FROM keep_campaigns k WHERE k.id = campaigns.id)
    WHERE id IN (SELECT k.id FROM keep_campaigns k JOIN automations a ON a.id = k.automation_id);
DROP TABLE keep_automations;
DROP TABLE keep_steps;
DROP TABLE keep_runs;
DROP TABLE keep_passes;
DROP TABLE keep_attr_seen;
DROP TABLE keep_campaigns;
