package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests shrink the batch size, so they run on SQLite only and are not
// parallel.

func sqliteStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "herald.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func smallBatches(t *testing.T, n int) {
	old := importBatchRows
	importBatchRows = n
	t.Cleanup(func() { importBatchRows = old })
}

func startImport(t *testing.T, s *Store, mode string) (int64, ImportOptions) {
	t.Helper()
	ctx := context.Background()
	l := &List{Name: "News", Optin: OptinSingle, Visibility: ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	im := &Import{Filename: "t.csv"}
	if err := s.CreateImport(ctx, im); err != nil {
		t.Fatal(err)
	}
	return im.ID, ImportOptions{ListID: l.ID, Mode: mode, LawfulBasis: BasisConsent, Source: "test",
		EmailColumn: 0, NameColumn: 1, Status: SubConfirmed, Evidence: Evidence{Actor: "test"}}
}

func reportOf(t *testing.T, s *Store, id int64) string {
	t.Helper()
	var b strings.Builder
	if err := s.WriteImportErrors(context.Background(), id, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestImportDuplicatesAcrossBatches(t *testing.T) {
	smallBatches(t, 3)
	s := sqliteStore(t)
	id, opts := startImport(t, s, ImportUpdate)
	var b strings.Builder
	b.WriteString("email,name\n")
	for i := range 10 {
		fmt.Fprintf(&b, "p%d@example.com,P%d\n", i, i)
	}
	b.WriteString("P1@example.com,again\np9@example.com,again\n") // lines 12 and 13
	data := b.String()
	if err := s.RunImport(context.Background(), id, strings.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatal(err)
	}
	im, _ := s.Import(context.Background(), id)
	if im.RowsRead != 12 || im.Inserted != 10 || im.Failed != 2 || im.ReadBytes != int64(len(data)) {
		t.Fatalf("import = %+v, want 12 read, 10 inserted, 2 failed", im)
	}
	rep := reportOf(t, s, id)
	if strings.Count(rep, "Duplicate") != 2 || !strings.Contains(rep, "12,P1@example.com") || !strings.Contains(rep, "13,p9@example.com") {
		t.Errorf("report = %q, want lines 12 and 13 as duplicates", rep)
	}
	if sub, _ := s.SubscriberByEmail(context.Background(), "p1@example.com"); sub.Name != "P1" {
		t.Errorf("a duplicate row updated the subscriber: %+v", sub)
	}
}

func TestImportFallsBackRowByRow(t *testing.T) {
	smallBatches(t, 100)
	s := sqliteStore(t)
	// A row the database refuses for a reason no check in Go foresees.
	err := s.db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON subscribers WHEN NEW.email = 'boom@example.com'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`).Error
	if err != nil {
		t.Fatal(err)
	}
	id, opts := startImport(t, s, ImportSkip)
	data := "email,name\na@example.com,A\nboom@example.com,B\nc@example.com,C\n"
	if err := s.RunImport(context.Background(), id, strings.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatal(err)
	}
	im, _ := s.Import(context.Background(), id)
	if im.Status != ImportFinished || im.RowsRead != 3 || im.Inserted != 2 || im.Failed != 1 {
		t.Fatalf("import = %+v, want finished, 3 read, 2 inserted, 1 failed", im)
	}
	for _, e := range []string{"a@example.com", "c@example.com"} {
		if _, err := s.SubscriberByEmail(context.Background(), e); err != nil {
			t.Errorf("%s lost with its batch: %v", e, err)
		}
	}
	if rep := reportOf(t, s, id); !strings.Contains(rep, "3,boom@example.com,The database refused this row.") {
		t.Errorf("report = %q", rep)
	}
	if brk, n, err := s.VerifyConsents(context.Background()); brk != nil || err != nil || n != 2 {
		t.Errorf("VerifyConsents() = %+v, %d, %v; want 2 rows verifying", brk, n, err)
	}
}

func TestImportCancelKeepsCommittedRows(t *testing.T) {
	smallBatches(t, 2)
	s := sqliteStore(t)
	id, opts := startImport(t, s, ImportSkip)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.RunImport(ctx, id, pr, 1000, opts) }()
	io.WriteString(pw, "email,name\na@example.com,A\nb@example.com,B\nc@example.com,C\n")
	// Wait until the first batch is committed, then cancel mid-file.
	deadline := time.Now().Add(10 * time.Second)
	for {
		im, err := s.Import(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if im.Inserted >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first batch never committed: %+v", im)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	pw.Close()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("RunImport() = %v, want context.Canceled", err)
	}
	im, _ := s.Import(context.Background(), id)
	if im.Status != ImportCancelled || im.Inserted < 2 || im.FinishedAt == nil || !strings.Contains(im.Message, "Stopped after") {
		t.Fatalf("import = %+v, want cancelled with the first batch kept", im)
	}
	if _, err := s.SubscriberByEmail(context.Background(), "a@example.com"); err != nil {
		t.Errorf("committed row lost on cancel: %v", err)
	}
}

func TestRecordLimiterStopsRunawayQuote(t *testing.T) {
	s := sqliteStore(t)
	id, opts := startImport(t, s, ImportSkip)
	// A quote that never closes would swallow the rest of the file.
	data := "email,name\na@example.com,A\nb@example.com,\"B\n" + strings.Repeat("c@example.com,C\n", MaxRecordBytes/16+10000)
	err := s.RunImport(context.Background(), id, strings.NewReader(data), int64(len(data)), opts)
	var ce *CSVError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "never closed") {
		t.Fatalf("RunImport() = %v, want a CSVError about an unclosed quote", err)
	}
	im, _ := s.Import(context.Background(), id)
	if im.Status != ImportFailed || im.Inserted != 1 {
		t.Errorf("import = %+v, want failed with the row before kept", im)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, in := range []string{"", "plain", `q"uote\back`, "tab\tnl\nctl\x01", "ünï €"} {
		got := string(appendJSONString(nil, in))
		want := jsonArray([]string{in})
		if "["+got+"]" != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want[1:len(want)-1])
		}
	}
}
