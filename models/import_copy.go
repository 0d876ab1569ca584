package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL an import batch reaches the database through COPY, its
// bulk-load protocol: rows travel as binary tuples with no statement to
// parse per row and no JSON to unpack on the server. New subscribers (with
// ids taken from the sequence beforehand), memberships and consent rows
// are copied straight into their tables; rows whose insert must skip
// duplicates (the error report, and new subscribers when the unique index
// refuses one) are copied into a temporary staging table first and merged
// with one INSERT … SELECT. The decisions about each row stay in
// Go (batchWriter.write), so both databases report the same errors.

// stageSchema creates the staging tables on the import's connection. They
// are temporary (the connection's own) and empty at every commit or
// rollback, so a batch retried row by row starts from nothing.
const stageSchema = `
CREATE TEMP TABLE IF NOT EXISTS import_stage_subscribers (email TEXT, name TEXT, attributes TEXT) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS import_stage_errors (row_num BIGINT, email TEXT, reason TEXT) ON COMMIT DELETE ROWS`

// prepareStage creates the staging tables once per import run.
func prepareStage(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, stageSchema); err != nil {
		return fmt.Errorf("create import staging tables: %w", err)
	}
	return nil
}

// copyRows runs COPY into table on the import's connection, inside the
// batch's open transaction (COPY joins whatever transaction the session
// is in), and returns how many rows it wrote.
func (r *importRun) copyRows(ctx context.Context, table string, columns []string, rows [][]any) (int64, error) {
	var n int64
	err := r.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copy into %s: the connection is %T, not pgx", table, dc)
		}
		var err error
		n, err = c.Conn().CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("copy into %s: %w", table, err)
	}
	return n, nil
}

// insertSubscribersCopy is insertSubscribers on PostgreSQL. The batch is
// copied straight into subscribers with ids taken from its sequence: a
// plain COPY writes the table in whole pages and skips the staging table
// and the speculative insertion ON CONFLICT needs for every row (together
// a fifth of the server's time per row). The lookup before it (existing)
// found none of these addresses, so the copy fails only when the unique
// index sees one the lookup did not (letters the two lower()s fold
// differently, or an address added meanwhile): then it is undone to its
// savepoint and the batch goes through insertSubscribersStaged, which
// leaves such rows out.
func (w *batchWriter) insertSubscribersCopy(fresh []*importRow) (map[string]int64, error) {
	ids, err := w.reserveSubscriberIDs(len(fresh))
	if err != nil {
		return nil, err
	}
	rows := make([][]any, len(fresh))
	for i, row := range fresh {
		rows[i] = []any{ids[i], row.email, row.name, row.attrJSON, SubscriberActive, w.now, w.now}
	}
	if _, err := w.tx.ExecContext(w.ctx, "SAVEPOINT import_subscribers"); err != nil {
		return nil, err
	}
	_, err = w.run.copyRows(w.ctx, "subscribers", []string{"id", "email", "name", "attributes", "status", "created_at", "updated_at"}, rows)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		out := make(map[string]int64, len(fresh))
		for i, row := range fresh {
			out[row.email] = ids[i]
		}
		return out, nil
	case errors.As(err, &pgErr) && pgErr.Code == pgUniqueViolation:
		if _, err := w.tx.ExecContext(w.ctx, "ROLLBACK TO SAVEPOINT import_subscribers"); err != nil {
			return nil, err
		}
		return w.insertSubscribersStaged(fresh)
	}
	return nil, err
}

// pgUniqueViolation is PostgreSQL's SQLSTATE for a unique index's refusal.
const pgUniqueViolation = "23505"

// reserveSubscriberIDs takes n ids from the subscribers' sequence, in
// ascending order, so the batch (sorted by address) appends to the
// primary key's last page.
func (w *batchWriter) reserveSubscriberIDs(n int) ([]int64, error) {
	rs, err := w.tx.QueryContext(w.ctx, `SELECT nextval('subscribers_id_seq') FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("reserve subscriber ids: %w", err)
	}
	defer rs.Close()
	ids := make([]int64, 0, n)
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	if len(ids) != n {
		return nil, fmt.Errorf("reserve subscriber ids: got %d of %d", len(ids), n)
	}
	slices.Sort(ids)
	return ids, nil
}

// insertSubscribersStaged inserts the batch through the staging table,
// skipping the addresses the unique index refuses.
func (w *batchWriter) insertSubscribersStaged(fresh []*importRow) (map[string]int64, error) {
	rows := make([][]any, len(fresh))
	for i, row := range fresh {
		rows[i] = []any{row.email, row.name, row.attrJSON}
	}
	if _, err := w.run.copyRows(w.ctx, "import_stage_subscribers", []string{"email", "name", "attributes"}, rows); err != nil {
		return nil, err
	}
	// The staging table is read in the order it was filled: the address
	// order insertSubscribers sorted the rows into.
	rs, err := w.tx.QueryContext(w.ctx, `INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at)
		SELECT email, name, attributes, 'active', $1, $1 FROM import_stage_subscribers
		ON CONFLICT DO NOTHING RETURNING id, email`, w.now)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	ids := make(map[string]int64, len(fresh))
	for rs.Next() {
		var id int64
		var email string
		if err := rs.Scan(&id, &email); err != nil {
			return nil, err
		}
		ids[email] = id
	}
	return ids, rs.Err()
}

// joinCopy adds the subscribers in ids to the import's list on PostgreSQL.
func (w *batchWriter) joinCopy(ids []int64) error {
	o := w.run.opts
	rows := make([][]any, len(ids))
	for i, id := range ids {
		rows[i] = []any{id, o.ListID, o.Status, w.now, w.now}
	}
	n, err := w.run.copyRows(w.ctx, "subscriptions", []string{"subscriber_id", "list_id", "status", "created_at", "updated_at"}, rows)
	if err != nil {
		return err
	}
	if n != int64(len(ids)) {
		return fmt.Errorf("inserted %d subscriptions of %d", n, len(ids))
	}
	return nil
}

// ledgerCopy writes the batch's chained consent rows on PostgreSQL.
func (w *batchWriter) ledgerCopy() error {
	rows := make([][]any, len(w.ledger))
	for i := range w.ledger {
		c := &w.ledger[i]
		rows[i] = []any{*c.SubscriberID, *c.ListID, c.Action, c.LawfulBasis, c.Source, c.Email, c.IP, c.UserAgent, c.Page,
			c.TextHash, c.Actor, c.Note, c.CreatedAt, c.PIIDigest, c.PrevHash, c.Hash}
	}
	n, err := w.run.copyRows(w.ctx, "consents", []string{"subscriber_id", "list_id", "action", "lawful_basis", "source", "email", "ip",
		"user_agent", "page", "text_hash", "actor", "note", "created_at", "pii_digest", "prev_hash", "hash"}, rows)
	if err != nil {
		return err
	}
	if n != int64(len(rows)) {
		return fmt.Errorf("inserted %d consent rows of %d", n, len(rows))
	}
	return nil
}

// errorsCopy writes the batch's error report lines on PostgreSQL.
func (w *batchWriter) errorsCopy() error {
	rows := make([][]any, len(w.errs))
	for i, e := range w.errs {
		rows[i] = []any{e.line, e.email, e.reason}
	}
	if _, err := w.run.copyRows(w.ctx, "import_stage_errors", []string{"row_num", "email", "reason"}, rows); err != nil {
		return err
	}
	// ON CONFLICT: a row retried alone after its batch failed is recorded once.
	_, err := w.tx.ExecContext(w.ctx, `INSERT INTO import_errors (import_id, row_num, email, reason)
		SELECT $1, row_num, email, reason FROM import_stage_errors ON CONFLICT DO NOTHING`, w.run.id)
	return err
}
