-- +goose Up
-- dsr_requests logs every data-subject request (access, portability,
-- rectification, erasure): who asked, when it came in, who handled it and
-- when. subject_email is blanked when the person is erased; subject_hash
-- (the suppression hash of the address) keeps the request findable.
CREATE TABLE dsr_requests (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('access', 'portability', 'rectification', 'erasure')),
    subject_email TEXT NOT NULL DEFAULT '',
    subject_hash  TEXT NOT NULL,
    subscriber_id INTEGER,
    status        TEXT NOT NULL CHECK (status IN ('open', 'done', 'rejected')),
    note          TEXT NOT NULL DEFAULT '',
    outcome       TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL DEFAULT '',
    handled_by    TEXT NOT NULL DEFAULT '',
    received_at   DATETIME NOT NULL,
    handled_at    DATETIME
);
CREATE INDEX dsr_requests_status_idx ON dsr_requests(status, received_at);
CREATE INDEX dsr_requests_subject_idx ON dsr_requests(subject_hash);

-- Consent review filters by list, date and address; erasure looks rows up
-- by address too.
CREATE INDEX consents_list_idx ON consents(list_id, id);
CREATE INDEX consents_created_idx ON consents(created_at);
CREATE INDEX consents_email_idx ON consents(lower(email));

-- Retention finds what is old without walking whole tables: tracking
-- events that still carry personal data, and unconfirmed subscriptions
-- (bounces by age use bounces_created_idx of 00006).
CREATE INDEX events_personal_idx ON events(created_at) WHERE (ip <> '' OR user_agent <> '' OR subscriber_id IS NOT NULL);
CREATE INDEX subscriptions_unconfirmed_idx ON subscriptions(created_at) WHERE status = 'unconfirmed';
CREATE INDEX outbox_created_idx ON outbox(created_at);

-- The audit page filters by object type and actor.
CREATE INDEX audit_log_object_idx ON audit_log(object_type, id);
CREATE INDEX audit_log_actor_idx ON audit_log(actor, id);

-- +goose Down
DROP INDEX audit_log_actor_idx;
DROP INDEX audit_log_object_idx;
DROP INDEX outbox_created_idx;
DROP INDEX subscriptions_unconfirmed_idx;
DROP INDEX events_personal_idx;
DROP INDEX consents_email_idx;
DROP INDEX consents_created_idx;
DROP INDEX consents_list_idx;
DROP TABLE dsr_requests;
