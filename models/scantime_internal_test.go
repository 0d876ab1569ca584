package models

import (
	"testing"
	"time"
)

func TestScanTime(t *testing.T) {
	want := time.Date(2026, 11, 23, 17, 45, 1, 500000000, time.UTC)
	for _, v := range []any{want, "2026-11-23 17:45:01.5+00:00", "2026-11-23T17:45:01.5Z", "2026-11-23 17:45:01.5"} {
		var got scanTime
		if err := got.Scan(v); err != nil || !time.Time(got).Equal(want) {
			t.Errorf("Scan(%v) = %v, %v; want %v", v, time.Time(got), err, want)
		}
	}
	var got scanTime
	if err := got.Scan("yesterday"); err == nil {
		t.Errorf("Scan(yesterday) = %v, want an error", time.Time(got))
	}
}
