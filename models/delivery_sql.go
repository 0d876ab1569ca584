package models

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// idSet passes a list of ids as one parameter (a JSON array for SQLite's
// json_each, an array literal for PostgreSQL), so the statement text is the
// same whatever the list's length.
func (s *Store) idSet(ids []int64) (string, any) {
	if s.dialect == Postgres {
		return "(SELECT unnest(CAST(? AS bigint[])))", s.idArray(ids)
	}
	return "(SELECT value FROM json_each(?))", s.idArray(ids)
}

// idRows is idSet as a FROM item, rows j with a column value, to join
// against: "id IN (list)" makes SQLite sort the list into a temporary
// index first. (CROSS JOIN keeps the list the outer loop on SQLite.)
func (s *Store) idRows(ids []int64) (string, any) {
	if s.dialect == Postgres {
		return "unnest(CAST(? AS bigint[])) AS j(value)", s.idArray(ids)
	}
	return "json_each(?) AS j", s.idArray(ids)
}

// timeText selects a time column for aggTime: on SQLite as its text, which
// the driver would otherwise try to read as t.String()'s format first and
// fail at, for every row.
func (s *Store) timeText(col string) string {
	if s.dialect == Postgres {
		return col
	}
	return "CAST(" + col + " AS TEXT)"
}

// idArray writes ids as the array idSet and idRows pass.
func (s *Store) idArray(ids []int64) string {
	var b strings.Builder
	open, close := "[", "]"
	if s.dialect == Postgres {
		open, close = "{", "}"
	}
	b.WriteString(open)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteString(close)
	return b.String()
}

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
