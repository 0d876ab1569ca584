-- +goose Up
-- A body per campaign: the campaign keeps its own subject, preheader, HTML
-- and text body and their format, copied from the template it started
-- from, so editing one campaign changes no template and no other campaign.
-- Existing campaigns get their template's content now and send what they
-- sent before (an empty campaign subject meant the template's).
ALTER TABLE campaigns ADD COLUMN preheader TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN html TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN text TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN format TEXT NOT NULL DEFAULT 'html';
UPDATE campaigns SET
    html = COALESCE((SELECT t.html FROM templates t WHERE t.id = campaigns.template_id), ''),
    text = COALESCE((SELECT t.text FROM templates t WHERE t.id = campaigns.template_id), ''),
    subject = CASE WHEN subject = '' THEN COALESCE((SELECT t.subject FROM templates t WHERE t.id = campaigns.template_id), '') ELSE subject END
WHERE template_id IS NOT NULL;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN format;
ALTER TABLE campaigns DROP COLUMN text;
ALTER TABLE campaigns DROP COLUMN html;
ALTER TABLE campaigns DROP COLUMN preheader;
