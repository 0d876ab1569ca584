package models

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// dialectSQL is what the deliveries code writes differently for SQLite
// and PostgreSQL, in one place rather than as branches through the
// materialise, claim and record files.
type dialectSQL interface {
	// rebind turns ? placeholders into the driver's.
	rebind(q string) string
	// update begins the claim's UPDATE.
	update() string
	// lockClause ends the claim's row selection.
	lockClause() string
	// serialize is a statement taking one key that makes the rest of the
	// transaction wait for any other that ran it with the key, until
	// that one ends: "" where writers are serial already (SQLite).
	serialize() string
	// emailDomain is the lower-cased domain of the address in col.
	emailDomain(col string) string
	// idSet is a subquery of the ids in one parameter (idArray).
	idSet() string
	// idRows is idSet as a FROM item j with a column value.
	idRows() string
	// idArray writes ids as the parameter of idSet and idRows.
	idArray(ids []int64) string
	// attrText is the text of the attribute of the JSON column col named
	// by its one parameter (NULL when absent).
	attrText(col string) string
	// attrSet is the JSON column col with the attribute named by its
	// first parameter set to the text of its second.
	attrSet(col string) string
	// timeText selects a time column for aggTime.
	timeText(col string) string
	// bySubscriber groups a join of subscribers s and their
	// subscriptions sp per person, in the order of sp's primary key
	// (subscriber_id first), so that SQLite can stream the groups;
	// PostgreSQL needs s.id among the keys to select s's columns.
	bySubscriber() string
	// leaseRows is a FROM item v(id, gen) of leases, and its parameter
	// (or parameters), which follow the renewal's two (renewLeases).
	leaseRows(leases []Lease) (string, any)
	// renewLeases is the statement that sets lease_until (its first
	// parameter) of the rows of from (leaseRows) still at their
	// generation and sending, whose lease ends before its second.
	renewLeases(from string) string
	// recordAlone writes outs in one statement outside a transaction
	// when the dialect can; ok false leaves them to recordBatch.
	recordAlone(ctx context.Context, db *sql.DB, outs []Outcome) (n int, ok bool, err error)
	// recordBatch writes what it can of outs in set-based statements,
	// books each changed row with count, and returns the outcomes left for
	// the row-by-row path and the bounces of the rows it changed.
	recordBatch(ctx context.Context, tx *sql.Tx, outs []Outcome, count func(int64, string, int)) ([]Outcome, []BounceNotice, error)

	// The segment conditions' reading of subscriber attributes (a JSON
	// object in a text column), in segment_sql.go. Every placeholder of
	// attrValueText and attrNumber takes attrPath(key).
	attrPath(key string) any
	// attrValueText is the attribute as text (true and false for booleans),
	// NULL when absent or null.
	attrValueText(col string) string
	// attrNumber is the attribute as a number: a JSON number, or a string
	// of the form -?[0-9]+(.[0-9]+)?; else NULL.
	attrNumber(col string) string
	// isDate is true when the text expr begins with YYYY-MM-DD.
	isDate(expr string) string
	// numParam is a placeholder compared with attrNumber.
	numParam() string
	// attrColumn is the attributes as attrValueText and attrNumber read
	// them inside attrScope.
	attrColumn() string
	// attrScope is the predicate conds over attrColumn as a predicate
	// over subscribers s.
	attrScope(conds string) string
	// liveStatus is true when the subscription status in col is
	// unconfirmed or confirmed.
	liveStatus(col string) string
}

func (s *Store) sqlDialect() dialectSQL {
	if s.dialect == Postgres {
		return postgresSQL{}
	}
	return sqliteSQL{}
}

type sqliteSQL struct{}

func (sqliteSQL) rebind(q string) string { return q }

// update: OR FAIL spares SQLite the statement journal; an error rolls the
// whole transaction back anyway.
func (sqliteSQL) update() string     { return "UPDATE OR FAIL" }
func (sqliteSQL) lockClause() string { return "" }
func (sqliteSQL) serialize() string  { return "" }
func (sqliteSQL) emailDomain(col string) string {
	return "lower(substr(" + col + ", instr(" + col + ", '@') + 1))"
}
func (sqliteSQL) attrText(col string) string {
	return "CAST(json_extract(" + col + ", '$.' || json_quote(?)) AS TEXT)"
}
func (sqliteSQL) attrSet(col string) string {
	return "json_set(COALESCE(NULLIF(" + col + ", ''), '{}'), '$.' || json_quote(?), ?)"
}
func (sqliteSQL) idSet() string              { return "(SELECT value FROM json_each(?))" }
func (sqliteSQL) idRows() string             { return "json_each(?) AS j" }
func (sqliteSQL) idArray(ids []int64) string { return intList("[", ids, "]") }

// timeText: as its text, which the driver would otherwise try to read as
// t.String()'s format first and fail at, for every row.
func (sqliteSQL) timeText(col string) string { return "CAST(" + col + " AS TEXT)" }
func (sqliteSQL) bySubscriber() string       { return "sp.subscriber_id" }

func (sqliteSQL) leaseRows(leases []Lease) (string, any) {
	b := make([]byte, 0, 24*len(leases)+2)
	b = append(b, '[')
	for i, l := range leases {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, l.ID, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, l.Gen, 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	return "(SELECT value->>0 AS id, value->>1 AS gen FROM json_each(?3)) AS v", string(b)
}

func (sqliteSQL) renewLeases(from string) string {
	return `UPDATE OR FAIL deliveries SET lease_until = ?1 FROM ` + from + `
		WHERE deliveries.id = v.id AND deliveries.lease_gen = v.gen AND deliveries.status = 'sending' AND deliveries.lease_until < ?2`
}

func (sqliteSQL) recordAlone(context.Context, *sql.DB, []Outcome) (int, bool, error) {
	return 0, false, nil
}

func (sqliteSQL) recordBatch(ctx context.Context, tx *sql.Tx, outs []Outcome, count func(int64, string, int)) ([]Outcome, []BounceNotice, error) {
	rest, err := recordAttempts(ctx, tx, outs, count)
	return rest, nil, err
}

type postgresSQL struct{}

func (postgresSQL) rebind(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (postgresSQL) update() string { return "UPDATE" }

// lockClause: concurrent claimers skip each other's rows.
func (postgresSQL) lockClause() string            { return " FOR UPDATE SKIP LOCKED" }
func (postgresSQL) serialize() string             { return "SELECT pg_advisory_xact_lock(?)" }
func (postgresSQL) emailDomain(col string) string { return "lower(split_part(" + col + ", '@', 2))" }
func (postgresSQL) attrText(col string) string    { return "((" + col + "::jsonb) ->> ?)" }
func (postgresSQL) attrSet(col string) string {
	return "(jsonb_set(COALESCE(NULLIF(" + col + ", ''), '{}')::jsonb, ARRAY[CAST(? AS text)], to_jsonb(CAST(? AS text))))::text"
}
func (postgresSQL) idSet() string              { return "(SELECT unnest(CAST(? AS bigint[])))" }
func (postgresSQL) idRows() string             { return "unnest(CAST(? AS bigint[])) AS j(value)" }
func (postgresSQL) idArray(ids []int64) string { return intList("{", ids, "}") }
func (postgresSQL) timeText(col string) string { return col }
func (postgresSQL) bySubscriber() string       { return "sp.subscriber_id, s.id" }

func (postgresSQL) leaseRows(leases []Lease) (string, any) {
	ids, gens := make([]int64, len(leases)), make([]int64, len(leases))
	for i, l := range leases {
		ids[i], gens[i] = l.ID, l.Gen
	}
	return "unnest(CAST($3 AS bigint[]), CAST($4 AS bigint[])) AS v(id, gen)", []any{ids, gens}
}

// renewLeases skips the rows another transaction holds: the outcome
// writer's (a row being recorded needs no lease) or a claimer's. Waiting
// for them instead held the writer up behind renewals of thousands of
// rows, and the two, locking rows in different orders, deadlocked.
func (postgresSQL) renewLeases(from string) string {
	return `UPDATE deliveries SET lease_until = $1 WHERE id IN (SELECT d.id FROM ` + from + `
		JOIN deliveries d ON d.id = v.id AND d.lease_gen = v.gen WHERE d.status = 'sending' AND d.lease_until < $2 FOR UPDATE OF d SKIP LOCKED)`
}

func (postgresSQL) recordAlone(ctx context.Context, db *sql.DB, outs []Outcome) (int, bool, error) {
	return recordAlonePostgres(ctx, db, outs)
}

func (postgresSQL) recordBatch(ctx context.Context, tx *sql.Tx, outs []Outcome, count func(int64, string, int)) ([]Outcome, []BounceNotice, error) {
	return recordSetPostgres(ctx, tx, outs, count)
}

func intList(open string, ids []int64, close string) string {
	b := make([]byte, 0, 8*len(ids)+2)
	b = append(b, open...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, close...))
}

// rebind turns ? placeholders into the driver's, for the hot paths that
// use database/sql directly.
func (s *Store) rebind(q string) string { return s.sqlDialect().rebind(q) }

// idSet passes a list of ids as one parameter, so the statement text is
// the same whatever the list's length.
func (s *Store) idSet(ids []int64) (string, any) {
	d := s.sqlDialect()
	return d.idSet(), d.idArray(ids)
}

// idRows is idSet as a FROM item, rows j with a column value, to join
// against: "id IN (list)" makes SQLite sort the list into a temporary
// index first. (CROSS JOIN keeps the list the outer loop on SQLite.)
func (s *Store) idRows(ids []int64) (string, any) {
	d := s.sqlDialect()
	return d.idRows(), d.idArray(ids)
}

// timeText selects a time column for aggTime.
func (s *Store) timeText(col string) string { return s.sqlDialect().timeText(col) }

// idArray writes ids as the array idSet and idRows pass.
func (s *Store) idArray(ids []int64) string { return s.sqlDialect().idArray(ids) }

func (c *Counters) add(status string, n int64) {
	switch status {
	case DeliveryQueued:
		c.Queued += n
	case DeliverySending:
		c.Sending += n
	case DeliverySent:
		c.Sent += n
	case DeliveryDeferred:
		c.Deferred += n
	case DeliveryBounced:
		c.Bounced += n
	case DeliveryFailed:
		c.Failed += n
	case DeliverySuppressed:
		c.Suppressed += n
	}
}

func (s *Store) applyCounters(ctx context.Context, tx *sql.Tx, delta map[int64]*Counters) error {
	for id, c := range delta {
		if *c == (Counters{}) {
			continue
		}
		_, err := tx.ExecContext(ctx, s.rebind(`UPDATE campaigns SET queued = queued + ?, sending = sending + ?, sent = sent + ?,
			deferred = deferred + ?, bounced = bounced + ?, failed = failed + ?, suppressed = suppressed + ? WHERE id = ?`),
			c.Queued, c.Sending, c.Sent, c.Deferred, c.Bounced, c.Failed, c.Suppressed, id)
		if err != nil {
			return err
		}
	}
	return nil
}
