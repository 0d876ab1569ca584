package models

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
	if r.s.dialect == SQLite {
		// Foreign keys are checked at commit, so no single insert can abort
		// half way and need a statement journal; a violation still fails
		// the batch.
		if _, err := tx.ExecContext(ctx, "PRAGMA defer_foreign_keys = ON"); err != nil {
			return nil, err
		}
	}
	if r.s.dialect == Postgres {
		// The commit need not wait for its WAL to reach the disk: a batch
		// lost in a server crash is lost whole, with the progress that
		// counts it, and the import resumes after the last batch that
		// survived. Fewer than 100 commits per million rows: a small gain,
		// but one that costs nothing.
		if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return nil, err
		}
	}
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
	if w.ledger == nil {
		w.ledger = make([]Consent, 0, importBatchRows)
	}
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
	// Fenced by the lease: a node that lost the import to another (its
	// lease ran out while it was stalled) commits nothing more. Each batch
	// also renews the lease, from the connection that holds the write
	// lock: on SQLite the renewals from another connection wait for it.
	res, err := w.tx.ExecContext(w.ctx, w.s.rebind(`UPDATE imports SET rows_read = ?, read_bytes = ?, inserted = ?, updated = ?, skipped = ?, failed = ?,
		lease_until = ? WHERE id = ? AND lease_owner = ?`),
		p.RowsRead, p.ReadBytes, p.Inserted, p.Updated, p.Skipped, p.Failed, dbTime(dbNow().Add(importLease)), w.run.id, w.run.owner)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n != 1 {
		return nil, errLeaseLost
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
	var fromRow map[string]string
	if row.attrJSON == "{}" || json.Unmarshal([]byte(row.attrJSON), &fromRow) != nil {
		return name, attrs, changed
	}
	m := map[string]any{}
	if err := json.Unmarshal([]byte(sub.attributes), &m); err != nil || m == nil {
		m = map[string]any{}
	}
	attrChanged := false
	for k, v := range fromRow {
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
	// CROSS JOIN makes SQLite walk the batch and probe the index, instead
	// of first copying the batch into a temporary index for IN (5% of an
	// import's time).
	q := `SELECT s.value_hash, s.reason FROM ` + w.s.jsonTextRows() + ` CROSS JOIN suppressions s WHERE s.value_hash = j.value`
	if w.s.dialect == Postgres {
		q = `SELECT value_hash, reason FROM suppressions WHERE value_hash = ANY(?)`
	}
	var arg any = jsonArray(hashes)
	if w.s.dialect == Postgres {
		// A text array, which pgx sends in binary: a third less server time
		// than parsing the same list as jsonb (which the planner also did
		// once more while planning each batch's statement).
		arg = hashes
	}
	rows, err := w.tx.QueryContext(w.ctx, w.s.rebind(q), arg)
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
	var q string
	switch w.s.dialect {
	case Postgres:
		q = `SELECT s.id, s.email, s.name, s.attributes, s.status FROM ` + pgEmailProbe
	default:
		// As in dropSuppressed: probe the index for each key of the batch.
		q = `SELECT s.id, s.email, s.name, s.attributes, s.status FROM json_each(?) AS j CROSS JOIN subscribers s ON lower(s.email) = j.value`
	}
	rows, err := w.tx.QueryContext(w.ctx, w.s.rebind(q), jsonArray(keys))
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
	rows, err := w.tx.QueryContext(w.ctx, w.s.rebind(`SELECT subscriber_id, status FROM subscriptions WHERE list_id = ? AND `+w.s.inJSONInt("subscriber_id")),
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
	// In address order the unique index takes the batch in one sweep
	// instead of at random places.
	slices.SortFunc(fresh, func(a, b *importRow) int { return strings.Compare(a.key, b.key) })
	if w.s.dialect == Postgres {
		return w.insertSubscribersCopy(fresh)
	}
	n := 2
	for _, row := range fresh {
		n += len(row.json) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, row := range fresh {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, row.json...)
	}
	b = append(b, ']')
	return w.insertSubscribersSQLite(fresh, string(b))
}

// insertSubscribersSQLite is insertSubscribers without RETURNING, which
// makes SQLite buffer the whole batch in a temporary table and cost a
// fifth of the insert: the batch holds the write lock, so it numbers the
// rows itself, after the highest id, and an address the unique index
// refuses leaves a gap that a range read finds.
func (w *batchWriter) insertSubscribersSQLite(fresh []*importRow, rows string) (map[string]int64, error) {
	ids := make(map[string]int64, len(fresh))
	var last int64
	if err := w.tx.QueryRowContext(w.ctx, "SELECT COALESCE(MAX(id), 0) FROM subscribers").Scan(&last); err != nil {
		return nil, err
	}
	res, err := w.tx.ExecContext(w.ctx, `INSERT OR IGNORE INTO subscribers (id, email, name, attributes, status, created_at, updated_at)
		SELECT ? + key + 1, value ->> 0, value ->> 1, value ->> 2, 'active', ?, ? FROM json_each(?)`, last, w.now, w.now, rows)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if n == int64(len(fresh)) {
		for i, row := range fresh {
			ids[row.email] = last + int64(i) + 1
		}
		return ids, nil
	}
	present := make(map[int64]bool, n)
	rs, err := w.tx.QueryContext(w.ctx, "SELECT id FROM subscribers WHERE id > ? AND id <= ?", last, last+int64(len(fresh)))
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		present[id] = true
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	for i, row := range fresh {
		if id := last + int64(i) + 1; present[id] {
			ids[row.email] = id
		}
	}
	return ids, nil
}

// subscribe adds ids to the list and confirms the members in confirm.
func (w *batchWriter) subscribe(join, confirm []int64) error {
	o := w.run.opts
	if len(join) > 0 && w.s.dialect == Postgres {
		if err := w.joinCopy(join); err != nil {
			return err
		}
	} else if len(join) > 0 {
		ts := w.s.tsArg()
		res, err := w.tx.ExecContext(w.ctx, w.s.rebind(w.s.bulkInsert(`subscriptions (subscriber_id, list_id, status, created_at, updated_at)
			SELECT j.value, CAST(? AS BIGINT), ?, `+ts+`, `+ts+` FROM `+w.s.jsonIntSet()+` AS j`, false)),
			o.ListID, o.Status, w.now, w.now, jsonArray(join))
		if err := allInserted(res, err, len(join)); err != nil {
			return err
		}
	}
	if len(confirm) > 0 {
		_, err := w.tx.ExecContext(w.ctx, w.s.rebind(`UPDATE subscriptions SET status = ?, updated_at = ? WHERE list_id = ? AND `+w.s.inJSONInt("subscriber_id")),
			SubConfirmed, w.now, o.ListID, jsonArray(confirm))
		if err != nil {
			return err
		}
	}
	return nil
}

// appendLedger chains the batch's consent rows onto the ledger exactly as
// appendConsents does (same head lock, digests and hashes) but in one
// statement per batch: through GORM a row costs ~60µs, which alone would
// hold an import to 16,000 rows a second. Every row of a batch comes from
// the same evidence, so only the per-row columns travel as JSON.
func (w *batchWriter) appendLedger() error {
	if len(w.ledger) == 0 {
		return nil
	}
	prev, err := w.s.chainHead(w.s.gormTx(w.ctx, w.tx))
	if err != nil {
		return fmt.Errorf("consent chain head: %w", err)
	}
	first := w.ledger[0]
	b := make([]byte, 0, len(w.ledger)*256)
	b = append(b, '[')
	for i := range w.ledger {
		c := &w.ledger[i]
		if c.ListID == nil || c.SubscriberID == nil || c.Action != first.Action || c.LawfulBasis != first.LawfulBasis ||
			c.Source != first.Source || c.IP != first.IP || c.UserAgent != first.UserAgent || c.Page != first.Page ||
			c.TextHash != first.TextHash || c.Actor != first.Actor || c.Note != first.Note || *c.ListID != *first.ListID {
			return fmt.Errorf("consent rows of one import batch differ in their shared columns")
		}
		c.CreatedAt = w.now
		c.PIIDigest = c.piiDigest()
		c.PrevHash = prev
		c.Hash = c.chainHash()
		prev = c.Hash
		if w.s.dialect == Postgres {
			continue // ledgerCopy sends the rows
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, *c.SubscriberID, 10)
		for _, f := range []string{c.Email, c.PIIDigest, c.PrevHash, c.Hash} {
			b = append(b, ',')
			b = appendJSONString(b, f)
		}
		b = append(b, ']')
	}
	if w.s.dialect == Postgres {
		return w.ledgerCopy()
	}
	b = append(b, ']')
	res, err := w.tx.ExecContext(w.ctx, w.s.rebind(w.s.bulkInsert(`consents (subscriber_id, list_id, action, lawful_basis, source, email, ip,
		user_agent, page, text_hash, actor, note, created_at, pii_digest, prev_hash, hash)
		SELECT CAST(value ->> 0 AS BIGINT), CAST(? AS BIGINT), ?, ?, ?, value ->> 1, ?, ?, ?, ?, ?, ?, `+w.s.tsArg()+`, value ->> 2, value ->> 3, value ->> 4
		FROM `+w.s.jsonRows(), false)),
		*first.ListID, first.Action, first.LawfulBasis, first.Source, first.IP, first.UserAgent, first.Page, first.TextHash,
		first.Actor, first.Note, w.now, string(b))
	return allInserted(res, err, len(w.ledger))
}

func (w *batchWriter) recordErrors() error {
	if len(w.errs) == 0 {
		return nil
	}
	if w.s.dialect == Postgres {
		return w.errorsCopy()
	}
	b := make([]byte, 0, len(w.errs)*96)
	b = append(b, '[')
	for i, e := range w.errs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, e.line, 10)
		b = append(b, ',')
		b = appendJSONString(b, e.email)
		b = append(b, ',')
		b = appendJSONString(b, e.reason)
		b = append(b, ']')
	}
	b = append(b, ']')
	// ON CONFLICT: a row retried alone after its batch failed is recorded once.
	_, err := w.tx.ExecContext(w.ctx, w.s.rebind(w.s.bulkInsert(`import_errors (import_id, row_num, email, reason)
		SELECT CAST(? AS BIGINT), CAST(value ->> 0 AS BIGINT), value ->> 1, value ->> 2 FROM `+w.s.jsonRows()+` WHERE true`, true)),
		w.run.id, string(b))
	return err
}

// gormTx is a GORM handle on tx, for store helpers written against GORM.
func (s *Store) gormTx(ctx context.Context, tx *sql.Tx) *gorm.DB {
	db := s.db.Session(&gorm.Session{Context: ctx, NewDB: true})
	db.Statement.ConnPool = tx
	return db
}

// The import hands the database a whole batch as one JSON argument: one
// statement to parse and one argument to bind, however many rows. These
// give the FROM or IN clause that unpacks it.

// jsonRows is a row source over a JSON array of arrays; each element is
// value, its fields value ->> 0, value ->> 1, …
func (s *Store) jsonRows() string {
	if s.dialect == Postgres {
		return `jsonb_array_elements(CAST(? AS jsonb)) AS j(value)`
	}
	return `json_each(?)`
}

// inJSONText and inJSONInt are "col is one of the strings (integers) of a
// JSON array argument". On PostgreSQL the array is unpacked once (ARRAY(…)
// is an init plan) and the index on col probed for each element. With
// col IN (SELECT … FROM jsonb_array_elements…) the planner, whose table
// statistics lag far behind a running import, read the whole index and
// hashed the batch instead: a cost that grew with every batch, and most of
// the server's CPU at 1M rows.
func (s *Store) inJSONText(col string) string {
	if s.dialect == Postgres {
		return col + ` = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(? AS jsonb))))`
	}
	return col + ` IN (SELECT value FROM json_each(?))`
}

func (s *Store) inJSONInt(col string) string {
	if s.dialect == Postgres {
		return col + ` = ANY(ARRAY(SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST(? AS jsonb)) AS j(value)))`
	}
	return col + ` IN (SELECT value FROM json_each(?))`
}

// pgEmailProbe is a FROM item on PostgreSQL: the subscribers s whose
// lower(email) is one of the strings of a JSON array argument. A lateral
// lookup per address with LIMIT 1 can only be a probe of the unique btree
// index: given lower(email) = ANY(…) the planner once chose the trigram
// GIN index on the same expression, one GIN scan per address over posting
// lists as long as the table (minutes per batch).
const pgEmailProbe = `jsonb_array_elements_text(CAST(? AS jsonb)) AS j(value)
	CROSS JOIN LATERAL (SELECT * FROM subscribers WHERE lower(email) = j.value LIMIT 1) AS s`

// jsonTextRows is a FROM item over a JSON array of strings, rows j with a
// column value, to join against: see idRows.
func (s *Store) jsonTextRows() string {
	if s.dialect == Postgres {
		return `jsonb_array_elements_text(CAST(? AS jsonb)) AS j(value)`
	}
	return `json_each(?) AS j`
}

// jsonIntSet is a subquery over a JSON array of integers.
func (s *Store) jsonIntSet() string {
	if s.dialect == Postgres {
		return `(SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST(? AS jsonb)) AS j(value))`
	}
	return `(SELECT value FROM json_each(?))`
}

// bulkInsert is "INSERT INTO " + rest. On SQLite it is INSERT OR IGNORE:
// a statement that cannot abort needs no statement journal, which would
// otherwise copy every index page the batch touches. Nothing but a
// duplicate can be ignored (every column is given), and callers check the
// row count where no row may be lost. ignoreDuplicates adds PostgreSQL's ON
// CONFLICT DO NOTHING.
func (s *Store) bulkInsert(rest string, ignoreDuplicates bool) string {
	if s.dialect == SQLite {
		return "INSERT OR IGNORE INTO " + rest
	}
	if ignoreDuplicates {
		return "INSERT INTO " + rest + " ON CONFLICT DO NOTHING"
	}
	return "INSERT INTO " + rest
}

// allInserted turns a short insert into an error, so the batch is retried
// row by row instead of losing a row silently.
func allInserted(res sql.Result, err error, want int) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != int64(want) {
		return fmt.Errorf("inserted %d rows of %d", n, want)
	}
	return nil
}

// tsArg is a timestamp argument in a SELECT list, where PostgreSQL cannot
// infer its type. (SQLite must not cast it: its CAST would make it a number.)
func (s *Store) tsArg() string {
	if s.dialect == Postgres {
		return `CAST(? AS TIMESTAMPTZ)`
	}
	return `?`
}

func jsonArray[T any](v []T) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
