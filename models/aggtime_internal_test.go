package models

import (
	"testing"
	"time"
)

// aggTime reads the times SQLite hands back as text (the layout the
// driver writes, and others) and PostgreSQL's time.Time.
func TestAggTime(t *testing.T) {
	want := time.Date(2026, 11, 23, 17, 45, 1, 500000000, time.UTC)
	for _, v := range []any{want, "2026-11-23 17:45:01.5+00:00", "2026-11-23T17:45:01.5Z", "2026-11-23 17:45:01.5", []byte("2026-11-23 18:45:01.5+01:00")} {
		var got aggTime
		if err := got.Scan(v); err != nil || !got.t.Equal(want) {
			t.Errorf("Scan(%v) = %v, %v; want %v", v, got.t, err, want)
		}
	}
	var got aggTime
	if err := got.Scan("yesterday"); err == nil {
		t.Errorf("Scan(yesterday) = %v, want an error", got.t)
	}
}
