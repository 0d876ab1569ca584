package models

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"
)

// exportPage is how many subscribers an export reads per query.
const exportPage = 2000

// ExportSubscribers writes every subscriber q selects (its Before and Limit
// are ignored) as CSV, newest first: email, name, status, attributes (a JSON
// object), created_at, and list_status when q.ListID is set. It reads one
// page at a time by keyset, so memory does not grow with the export, and
// the file imports back into Herald as it is.
func (s *Store) ExportSubscribers(ctx context.Context, q SubscriberQuery, w io.Writer) error {
	cw := csv.NewWriter(w)
	header := []string{"email", "name", "status", "attributes", "created_at"}
	if q.ListID != 0 {
		header = append(header, "list_status")
	}
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("models: export subscribers: %w", err)
	}
	q.Before = 0
	rec := make([]string, len(header))
	for {
		sqlText, args := s.subscriberSearch(q, exportPage, "s.attributes", false, 0)
		rows, err := s.sql.QueryContext(ctx, s.rebind(sqlText), args...)
		if err != nil {
			return fmt.Errorf("models: export subscribers: %w", err)
		}
		n := 0
		for rows.Next() {
			var (
				id                                   int64
				email, name, status, listStatus, att string
				created                              time.Time
			)
			if err := rows.Scan(&id, &email, &name, &status, &created, &listStatus, &att); err != nil {
				rows.Close()
				return fmt.Errorf("models: export subscribers: %w", err)
			}
			rec[0], rec[1], rec[2], rec[3], rec[4] = csvSafe(email), csvSafe(name), status, att, created.UTC().Format(time.RFC3339)
			if q.ListID != 0 {
				rec[5] = listStatus
			}
			if err := cw.Write(rec); err != nil {
				rows.Close()
				return fmt.Errorf("models: export subscribers: %w", err)
			}
			n++
			q.Before = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("models: export subscribers: %w", err)
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("models: export subscribers: %w", err)
		}
		if n < exportPage {
			return nil
		}
	}
}

// unguardCell undoes csvSafe on a cell read back from an export.
func unguardCell(cell string) string {
	if len(cell) > 1 && cell[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(cell[1])) {
		return cell[1:]
	}
	return cell
}
