-- +goose Up
-- allow_list holds addresses and domains that soft-bounce rules never
-- suppress and that still get real mail when staging is on.
CREATE TABLE allow_list (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('address', 'domain')),
    value      TEXT NOT NULL UNIQUE,
    note       TEXT NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL
);

-- The suppressions page searches by prefix of the address or domain.
CREATE INDEX suppressions_value_idx ON suppressions(value);

-- +goose Down
DROP INDEX suppressions_value_idx;
DROP TABLE allow_list;
