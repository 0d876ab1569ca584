-- +goose Up
-- More automation steps: put people on a list or take them off one
-- (target_list_id), set an attribute (attr_key, attr_value); and a branch
-- on segment membership (segment_id). SQLite cannot change a CHECK, so
-- the table is rebuilt; dropping the old one would cascade to
-- automation_passes under foreign_keys, so those rows are kept aside and
-- put back.
CREATE TABLE automation_steps_new (
    id             INTEGER PRIMARY KEY,
    automation_id  INTEGER NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('send', 'wait', 'branch', 'exit', 'list_add', 'list_remove', 'set_attribute')),
    campaign_id    INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    wait_days      INTEGER NOT NULL DEFAULT 0,
    wait_seconds   INTEGER NOT NULL DEFAULT 0,
    wait_until     TEXT NOT NULL DEFAULT '',
    wait_weekday   INTEGER NOT NULL DEFAULT -1,
    cond           TEXT NOT NULL DEFAULT '',
    cond_step      INTEGER NOT NULL DEFAULT 0,
    cond_key       TEXT NOT NULL DEFAULT '',
    cond_value     TEXT NOT NULL DEFAULT '',
    then_step      INTEGER NOT NULL DEFAULT 0,
    else_step      INTEGER NOT NULL DEFAULT 0,
    target_list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
    attr_key       TEXT NOT NULL DEFAULT '',
    attr_value     TEXT NOT NULL DEFAULT '',
    segment_id     INTEGER REFERENCES segments(id) ON DELETE SET NULL,
    UNIQUE (automation_id, version, position)
);
INSERT INTO automation_steps_new (id, automation_id, version, position, kind, campaign_id, wait_days, wait_seconds, wait_until,
    wait_weekday, cond, cond_step, cond_key, cond_value, then_step, else_step)
SELECT id, automation_id, version, position, kind, campaign_id, wait_days, wait_seconds, wait_until,
    wait_weekday, cond, cond_step, cond_key, cond_value, then_step, else_step FROM automation_steps;
CREATE TABLE automation_passes_keep AS SELECT * FROM automation_passes;
DROP TABLE automation_steps;
ALTER TABLE automation_steps_new RENAME TO automation_steps;
DELETE FROM automation_passes;
INSERT INTO automation_passes SELECT * FROM automation_passes_keep;
DROP TABLE automation_passes_keep;

-- +goose Down
CREATE TABLE automation_steps_old (
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
INSERT INTO automation_steps_old SELECT id, automation_id, version, position, kind, campaign_id, wait_days, wait_seconds, wait_until,
    wait_weekday, cond, cond_step, cond_key, cond_value, then_step, else_step FROM automation_steps
    WHERE kind IN ('send', 'wait', 'branch', 'exit');
CREATE TABLE automation_passes_keep AS SELECT * FROM automation_passes;
DROP TABLE automation_steps;
ALTER TABLE automation_steps_old RENAME TO automation_steps;
DELETE FROM automation_passes;
INSERT INTO automation_passes SELECT * FROM automation_passes_keep WHERE step_id IN (SELECT id FROM automation_steps);
DROP TABLE automation_passes_keep;
