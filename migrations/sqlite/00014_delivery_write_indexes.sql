-- +goose Up
-- Recording an outcome kept two indexes up that cost more than they gave.
-- The Message-ID index: a report quoting a Message-ID finds its delivery
-- through the token the Message-ID carries (by primary key, the stored
-- Message-ID confirming it); the random keys spread every batch of sends
-- over the whole index.
DROP INDEX deliveries_message_id_idx;
-- The source-IP index serves the warm-up cap, which counts sent rows only;
-- unsent rows all went under one empty key, moved out of it on every send.
DROP INDEX deliveries_sent_ip_idx;
CREATE INDEX deliveries_sent_ip_idx ON deliveries(source_ip, sent_at) WHERE sent_at IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_sent_ip_idx;
CREATE INDEX deliveries_sent_ip_idx ON deliveries(source_ip, sent_at);
CREATE INDEX deliveries_message_id_idx ON deliveries(message_id) WHERE message_id <> '';
