-- +goose Up
-- Contains-search on address and name: an FTS5 trigram index over both,
-- kept in step with subscribers by triggers. A phrase query on it finds a
-- term anywhere in either column, through the index, any case.
CREATE VIRTUAL TABLE subscribers_fts USING fts5(
    email, name, content='subscribers', content_rowid='id', tokenize='trigram'
);
INSERT INTO subscribers_fts(subscribers_fts) VALUES ('rebuild');
-- +goose StatementBegin
CREATE TRIGGER subscribers_fts_insert AFTER INSERT ON subscribers BEGIN
    INSERT INTO subscribers_fts(rowid, email, name) VALUES (new.id, new.email, new.name);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subscribers_fts_delete AFTER DELETE ON subscribers BEGIN
    INSERT INTO subscribers_fts(subscribers_fts, rowid, email, name) VALUES ('delete', old.id, old.email, old.name);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subscribers_fts_update AFTER UPDATE OF email, name ON subscribers BEGIN
    INSERT INTO subscribers_fts(subscribers_fts, rowid, email, name) VALUES ('delete', old.id, old.email, old.name);
    INSERT INTO subscribers_fts(rowid, email, name) VALUES (new.id, new.email, new.name);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER subscribers_fts_update;
DROP TRIGGER subscribers_fts_delete;
DROP TRIGGER subscribers_fts_insert;
DROP TABLE subscribers_fts;
