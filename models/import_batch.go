package models

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// batchResult is what one committed batch added to the import's progress.
type batchResult struct {
	importProgress
	touched []int64 // subscribers the batch inserted, updated or skipped
}

type rowError struct {
	line          int64
	email, reason string
}

// existingSub is a subscriber a row's address already belongs to.
type existingSub struct {
	id                      int64
	email, name, attributes string
	status                  string
}

// writeRows writes rows in one transaction on the import's connection and
// records their errors and the new progress in the same transaction, so
// the imports row never counts rows that were rolled back.
func (r *importRun) writeRows(ctx context.Context, rows []importRow, end int64) (*batchResult, error) {
	tx, err := r.conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	w := &batchWriter{run: r, s: r.s, ctx: ctx, tx: tx, now: dbNow()}
	res, err := w.write(rows, end)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

type batchWriter struct {
	run *importRun
	s   *Store
	ctx context.Context
	tx  *sql.Tx
	now time.Time

	res    batchResult
	errs   []rowError
	ledger []Consent
}

func (w *batchWriter) fail(row *importRow, reason string) {
	email := row.raw
	if len(email) > 320 {
		email = email[:320]
	}
	w.errs = append(w.errs, rowError{row.line, strings.ToValidUTF8(email, "\uFFFD"), reason})
	w.res.Failed++
}

// consent queues the ledger row for a subscription the import created or
// changed.
func (w *batchWriter) consent(subscriberID int64, email string) {
	o := w.run.opts
	ev := o.Evidence
	ev.Source, ev.LawfulBasis = SourceImport, o.LawfulBasis
	ev.Note = strings.TrimSpace(fmt.Sprintf("import %d: %s", w.run.id, o.Source))
	w.ledger = append(w.ledger, ev.row(ConsentImported, subscriberID, o.ListID, email))
}

func (w *batchWriter) write(rows []importRow, end int64) (*batchResult, error) {
	opts := w.run.opts
	w.res.RowsRead, w.res.ReadBytes = int64(len(rows)), end

	// Rows refused by the parser, and repeats within the batch.
	cand := make([]*importRow, 0, len(rows))
	first := make(map[string]int64, len(rows))
	for i := range rows {
		row := &rows[i]
		if row.fail != "" {
			w.fail(row, row.fail)
			continue
		}
		if line, dup := first[row.key]; dup {
			w.fail(row, fmt.Sprintf("Duplicate: the address is already on line %d.", line))
			continue
		}
		first[row.key] = row.line
		cand = append(cand, row)
	}

	cand, err := w.dropSuppressed(cand)
	if err != nil {
		return nil, err
	}
	existing, err := w.existing(cand)
	if err != nil {
		return nil, err
	}

	var fresh []*importRow
	type update struct {
		row *importRow
		sub *existingSub
	}
	var updates []update
	for _, row := range cand {
		sub, ok := existing[row.key]
		switch {
		case !ok:
			fresh = append(fresh, row)
		case w.run.touched.has(sub.id):
			w.fail(row, "Duplicate: the address is already on an earlier line.")
		case sub.status != SubscriberActive:
			w.fail(row, "The subscriber is blocklisted; an import does not subscribe them.")
		case opts.Mode == ImportSkip:
			w.res.Skipped++
			w.res.touched = append(w.res.touched, sub.id)
		default:
			updates = append(updates, update{row, sub})
		}
	}

	// Existing subscribers in update mode: join the list unless they left
	// it, confirm unless already confirmed, take the file's name and
	// attributes.
	ids := make([]int64, len(updates))
	for i, u := range updates {
		ids[i] = u.sub.id
	}
	member, err := w.memberships(ids)
	if err != nil {
		return nil, err
	}
	var joins, confirms []int64
	for _, u := range updates {
		status, has := member[u.sub.id]
		if has && status == SubUnsubscribed {
			w.fail(u.row, "The subscriber unsubscribed from this list; an import does not subscribe them again.")
			continue
		}
		changed := false
		switch {
		case !has:
			joins = append(joins, u.sub.id)
			w.consent(u.sub.id, u.sub.email)
			changed = true
		case status == SubUnconfirmed && opts.Status == SubConfirmed:
			confirms = append(confirms, u.sub.id)
			w.consent(u.sub.id, u.sub.email)
			changed = true
		}
		name, attrs, dataChanged := mergeSubscriber(u.sub, u.row)
		if dataChanged {
			changed = true
			if _, err := w.tx.ExecContext(w.ctx, w.s.rebind(`UPDATE subscribers SET name = ?, attributes = ?, updated_at = ? WHERE id = ?`),
				name, attrs, w.now, u.sub.id); err != nil {
				return nil, err
			}
		}
		if changed {
			w.res.Updated++
		} else {
			w.res.Skipped++
		}
		w.res.touched = append(w.res.touched, u.sub.id)
	}

	// New subscribers.
	newIDs, err := w.insertSubscribers(fresh)
	if err != nil {
		return nil, err
	}
	for _, row := range fresh {
		id, ok := newIDs[row.email]
		if !ok {
			// The unique index saw an address the lookup did not: one
			// differing only in letters the two lower()s fold differently,
			// or one added by someone else meanwhile.
			w.fail(row, "An existing subscriber has this address (written with different letter case).")
			continue
		}
		joins = append(joins, id)
		w.consent(id, row.email)
		w.res.Inserted++
		w.res.touched = append(w.res.touched, id)
	}

	if err := w.subscribe(joins, confirms); err != nil {
		return nil, err
	}
	if err := w.appendLedger(); err != nil {
		return nil, err
	}
	if err := w.recordErrors(); err != nil {
		return nil, err
	}
	p := w.run.done
	p.add(w.res.importProgress)
	_, err = w.tx.ExecContext(w.ctx, w.s.rebind(`UPDATE imports SET rows_read = ?, read_bytes = ?, inserted = ?, updated = ?, skipped = ?, failed = ? WHERE id = ?`),
		p.RowsRead, p.ReadBytes, p.Inserted, p.Updated, p.Skipped, p.Failed, w.run.id)
	if err != nil {
		return nil, err
	}
	return &w.res, nil
}

// mergeSubscriber applies a row's name and attributes to an existing
// subscriber and reports whether anything changed.
func mergeSubscriber(sub *existingSub, row *importRow) (name, attrs string, changed bool) {
	name, attrs = sub.name, sub.attributes
	if row.hasName && row.name != sub.name {
		name, changed = row.name, true
	}
	if len(row.attrs) == 0 {
		return name, attrs, changed
	}
	m := map[string]any{}
	if err := json.Unmarshal([]byte(sub.attributes), &m); err != nil || m == nil {
		m = map[string]any{}
	}
	attrChanged := false
	for k, v := range row.attrs {
		if old, ok := m[k].(string); !ok || old != v {
			m[k] = v
			attrChanged = true
		}
	}
	if attrChanged {
		b, _ := json.Marshal(m)
		attrs, changed = string(b), true
	}
	return name, attrs, changed
}

// dropSuppressed fails the rows whose address or domain is suppressed.
func (w *batchWriter) dropSuppressed(cand []*importRow) ([]*importRow, error) {
	if len(cand) == 0 {
		return cand, nil
	}
	hashes := make([]string, 0, len(cand)+16)
	seen := map[string]bool{}
	for _, row := range cand {
		hashes = append(hashes, row.hash)
		if !seen[row.domainHash] {
			seen[row.domainHash] = true
			hashes = append(hashes, row.domainHash)
		}
	}
	rows, err := w.tx.QueryContext(w.ctx, w.s.rebind(`SELECT value_hash, reason FROM suppressions WHERE value_hash IN `+w.s.jsonTextSet()), jsonArray(hashes))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	reasons := map[string]string{}
	for rows.Next() {
		var h, reason string
		if err := rows.Scan(&h, &reason); err != nil {
			return nil, err
		}
		reasons[h] = reason
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(reasons) == 0 {
		return cand, nil
	}
	kept := cand[:0]
	for _, row := range cand {
		if reason, ok := reasons[row.hash]; ok {
			w.fail(row, "Suppressed: the address is on the suppression list ("+suppressionWords(reason)+").")
		} else if reason, ok := reasons[row.domainHash]; ok {
			w.fail(row, "Suppressed: the domain "+EmailDomain(row.email)+" is on the suppression list ("+suppressionWords(reason)+").")
		} else {
			kept = append(kept, row)
		}
	}
	return kept, nil
}

func suppressionWords(reason string) string {
	switch reason {
	case SuppressHardBounce:
		return "hard bounce"
	case SuppressComplaint:
		return "spam complaint"
	case SuppressUnsubscribe:
		return "unsubscribed"
	case SuppressErased:
		return "erased at the person's request"
	}
	return "added by hand"
}

// existing finds the subscribers the rows' addresses already belong to,
// keyed by emailKey, through the unique lower(email) index.
func (w *batchWriter) existing(cand []*importRow) (map[string]*existingSub, error) {
	out := map[string]*existingSub{}
	if len(cand) == 0 {
		return out, nil
	}
	keys := make([]string, len(cand))
	for i, row := range cand {
		keys[i] = row.key
	}
	rows, err := w.tx.QueryContext(w.ctx, w.s.rebind(`SELECT id, email, name, attributes, status FROM subscribers WHERE lower(email) IN `+w.s.jsonTextSet()), jsonArray(keys))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		sub := &existingSub{}
		if err := rows.Scan(&sub.id, &sub.email, &sub.name, &sub.attributes, &sub.status); err != nil {
			return nil, err
		}
		out[w.s.emailKey(sub.email)] = sub
	}
	return out, rows.Err()
}

// memberships returns the status on the import's list of each subscriber
// in ids that has one.
func (w *batchWriter) memberships(ids []int64) (map[int64]string, error) {
	out := map[int64]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := w.tx.QueryContext(w.ctx, w.s.rebind(`SELECT subscriber_id, status FROM subscriptions WHERE list_id = ? AND subscriber_id IN `+w.s.jsonIntSet()),
		w.run.opts.ListID, jsonArray(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status string
		if err := rows.Scan(&id, &status); err != nil {
			return nil, err
		}
		out[id] = status
	}
	return out, rows.Err()
}

// insertSubscribers inserts new subscribers and returns their ids by
// address. An address the unique index refuses is left out.
func (w *batchWriter) insertSubscribers(fresh []*importRow) (map[string]int64, error) {
	ids := make(map[string]int64, len(fresh))
	if len(fresh) == 0 {
		return ids, nil
	}
	args := make([]any, 0, len(fresh)*5)
	for _, row := range fresh {
		args = append(args, row.email, row.name, row.attrJSON, w.now, w.now)
	}
	err := w.s.insertValues(w.ctx, w.tx, `INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at) VALUES `,
		`(?, ?, ?, 'active', ?, ?)`, ` ON CONFLICT DO NOTHING RETURNING id, email`, 5, args,
		func(rows *sql.Rows) error {
			var id int64
			var email string
			if err := rows.Scan(&id, &email); err != nil {
				return err
			}
			ids[email] = id
			return nil
		})
	return ids, err
}

// subscribe adds ids to the list and confirms the members in confirm.
func (w *batchWriter) subscribe(join, confirm []int64) error {
	o := w.run.opts
	if len(join) > 0 {
		args := make([]any, 0, len(join)*5)
		for _, id := range join {
			args = append(args, id, o.ListID, o.Status, w.now, w.now)
		}
		err := w.s.insertValues(w.ctx, w.tx, `INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at) VALUES `,
			`(?, ?, ?, ?, ?)`, ``, 5, args, nil)
		if err != nil {
			return err
		}
	}
	if len(confirm) > 0 {
		_, err := w.tx.ExecContext(w.ctx, w.s.rebind(`UPDATE subscriptions SET status = ?, updated_at = ? WHERE list_id = ? AND subscriber_id IN `+w.s.jsonIntSet()),
			SubConfirmed, w.now, o.ListID, jsonArray(confirm))
		if err != nil {
			return err
		}
	}
	return nil
}

// appendLedger chains the batch's consent rows onto the ledger exactly as
// appendConsents does (same head lock, digests and hashes), but inserts them
// with multi-row statements: through GORM a row costs ~60µs, which alone
// would hold an import to 16,000 rows a second.
func (w *batchWriter) appendLedger() error {
	if len(w.ledger) == 0 {
		return nil
	}
	prev, err := w.s.chainHead(w.s.gormTx(w.ctx, w.tx))
	if err != nil {
		return fmt.Errorf("consent chain head: %w", err)
	}
	args := make([]any, 0, len(w.ledger)*16)
	for i := range w.ledger {
		c := &w.ledger[i]
		c.CreatedAt = w.now
		c.PIIDigest = c.piiDigest()
		c.PrevHash = prev
		c.Hash = c.chainHash()
		prev = c.Hash
		args = append(args, *c.SubscriberID, *c.ListID, c.Action, c.LawfulBasis, c.Source, c.Email, c.IP, c.UserAgent,
			c.Page, c.TextHash, c.Actor, c.Note, c.CreatedAt, c.PIIDigest, c.PrevHash, c.Hash)
	}
	return w.s.insertValues(w.ctx, w.tx, `INSERT INTO consents (subscriber_id, list_id, action, lawful_basis, source, email, ip,
		user_agent, page, text_hash, actor, note, created_at, pii_digest, prev_hash, hash) VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``, 16, args, nil)
}

func (w *batchWriter) recordErrors() error {
	if len(w.errs) == 0 {
		return nil
	}
	args := make([]any, 0, len(w.errs)*4)
	for _, e := range w.errs {
		args = append(args, w.run.id, e.line, e.email, e.reason)
	}
	// ON CONFLICT: a row retried alone after its batch failed is recorded once.
	return w.s.insertValues(w.ctx, w.tx, `INSERT INTO import_errors (import_id, row_num, email, reason) VALUES `,
		`(?, ?, ?, ?)`, ` ON CONFLICT DO NOTHING`, 4, args, nil)
}

// gormTx is a GORM handle on tx, for store helpers written against GORM.
func (s *Store) gormTx(ctx context.Context, tx *sql.Tx) *gorm.DB {
	db := s.db.Session(&gorm.Session{Context: ctx, NewDB: true})
	db.Statement.ConnPool = tx
	return db
}

// importStmtArgs is about how many arguments a multi-row SQLite statement
// carries.
var importStmtArgs = 128

// insertValues runs head + VALUES rows + tail with rowSQL (ncols
// placeholders) repeated for the rows in args, several rows per statement.
// When scan is not nil it receives each row the statement returns.
func (s *Store) insertValues(ctx context.Context, tx *sql.Tx, head, rowSQL, tail string, ncols int, args []any, scan func(*sql.Rows) error) error {
	// The SQLite driver binds arguments in time quadratic in their number,
	// so its statements stay small; PostgreSQL takes many more.
	per := max(1, importStmtArgs/ncols)
	if s.dialect == Postgres {
		per = 8000 / ncols
	}
	var full string
	for len(args) > 0 {
		n := min(per, len(args)/ncols)
		var q string
		if n == per && full != "" {
			q = full
		} else {
			var b strings.Builder
			b.WriteString(head)
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(rowSQL)
			}
			b.WriteString(tail)
			q = s.rebind(b.String())
			if n == per {
				full = q
			}
		}
		chunk := args[:n*ncols]
		args = args[n*ncols:]
		if scan == nil {
			if _, err := tx.ExecContext(ctx, q, chunk...); err != nil {
				return err
			}
			continue
		}
		rows, err := tx.QueryContext(ctx, q, chunk...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// jsonTextSet and jsonIntSet are a subquery over one parameter holding a
// JSON array: one argument for a whole batch, however many values it has.
func (s *Store) jsonTextSet() string {
	if s.dialect == Postgres {
		return `(SELECT jsonb_array_elements_text(CAST(? AS jsonb)))`
	}
	return `(SELECT value FROM json_each(?))`
}

func (s *Store) jsonIntSet() string {
	if s.dialect == Postgres {
		return `(SELECT CAST(jsonb_array_elements_text(CAST(? AS jsonb)) AS BIGINT))`
	}
	return `(SELECT value FROM json_each(?))`
}

func jsonArray[T any](v []T) string {
	b, _ := json.Marshal(v)
	return string(b)
}
