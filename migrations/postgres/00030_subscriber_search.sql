-- +goose Up
-- Contains-search on address and name: trigram GIN indexes (pg_trgm), which
-- serve lower(col) LIKE '%term%' for terms of three or more characters.
-- The extension is created once per database, in public unless it exists
-- already; the operator class is named with whatever schema it lives in.
-- +goose StatementBegin
DO $$
DECLARE ns text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN unique_violation OR duplicate_object THEN
        NULL; -- created by a concurrent migration of another schema
    END;
    SELECT n.nspname INTO ns FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX subscribers_email_trgm_idx ON subscribers USING gin (lower(email) %I.gin_trgm_ops)', ns);
    EXECUTE format('CREATE INDEX subscribers_name_trgm_idx ON subscribers USING gin (lower(name) %I.gin_trgm_ops)', ns);
END $$;
-- +goose StatementEnd

-- +goose Down
DROP INDEX subscribers_name_trgm_idx;
DROP INDEX subscribers_email_trgm_idx;
