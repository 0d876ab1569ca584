-- +goose Up
-- More automation steps: put people on a list or take them off one
-- (target_list_id), set an attribute (attr_key, attr_value); and a branch
-- on segment membership (segment_id).
ALTER TABLE automation_steps DROP CONSTRAINT automation_steps_kind_check;
ALTER TABLE automation_steps ADD CONSTRAINT automation_steps_kind_check
    CHECK (kind IN ('send', 'wait', 'branch', 'exit', 'list_add', 'list_remove', 'set_attribute'));
ALTER TABLE automation_steps ADD COLUMN target_list_id BIGINT REFERENCES lists(id) ON DELETE SET NULL;
ALTER TABLE automation_steps ADD COLUMN attr_key TEXT NOT NULL DEFAULT '';
ALTER TABLE automation_steps ADD COLUMN attr_value TEXT NOT NULL DEFAULT '';
ALTER TABLE automation_steps ADD COLUMN segment_id BIGINT REFERENCES segments(id) ON DELETE SET NULL;

-- +goose Down
ALTER TABLE automation_steps DROP COLUMN segment_id;
ALTER TABLE automation_steps DROP COLUMN attr_value;
ALTER TABLE automation_steps DROP COLUMN attr_key;
ALTER TABLE automation_steps DROP COLUMN target_list_id;
ALTER TABLE automation_steps DROP CONSTRAINT automation_steps_kind_check;
ALTER TABLE automation_steps ADD CONSTRAINT automation_steps_kind_check
    CHECK (kind IN ('send', 'wait', 'branch', 'exit'));
