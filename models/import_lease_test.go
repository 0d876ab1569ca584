package models_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// resumeFile is an import whose rows test what a resumed run must
// remember from before the stop: addresses repeated across the point where
// it stopped, refused rows of every kind on both sides of it.
func resumeFile() string {
	lines := []string{"email,name,city"}
	for i := range 40 {
		switch i {
		case 3:
			lines = append(lines, "not-an-address,Bad,Lyon")
		case 5, 31:
			lines = append(lines, "blocked@example.com,B,Lyon")
		case 7, 33:
			lines = append(lines, "bounced@example.com,S,Lyon")
		case 9:
			lines = append(lines, "left@example.com,Left,Lyon")
		case 25:
			lines = append(lines, "READER02@example.com,Again,Lyon") // line 4's address
		case 27:
			lines = append(lines, "reader10@example.com,Again,Lyon") // line 12's, in the same batch as no other
		case 29:
			lines = append(lines, "short@example.com")
		default:
			lines = append(lines, fmt.Sprintf("reader%02d@example.com,Reader %d,Lyon", i, i))
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// resumeFixture gives a store the subscribers the file meets: one
// blocklisted, one who left the list, one suppressed address.
func resumeFixture(t *testing.T, s *models.Store) *models.List {
	t.Helper()
	ctx := context.Background()
	l := newList(t, s, "News")
	blocked := &models.Subscriber{Email: "blocked@example.com"}
	if err := s.CreateSubscriber(ctx, blocked, nil, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBlocklisted(ctx, blocked.ID, true, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSuppression(ctx, "bounced@example.com", models.SuppressHardBounce, ""); err != nil {
		t.Fatal(err)
	}
	left := &models.Subscriber{Email: "left@example.com"}
	if err := s.CreateSubscriber(ctx, left, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec("UPDATE subscriptions SET status = ? WHERE subscriber_id = ?", models.SubUnsubscribed, left.ID).Error; err != nil {
		t.Fatal(err)
	}
	return l
}

// uploadImport stores data as an uploaded import and starts it with opts,
// as the dashboard does.
func uploadImport(t *testing.T, s *models.Store, data string, opts models.ImportOptions) int64 {
	t.Helper()
	ctx := context.Background()
	im := &models.Import{Filename: "people.csv", ListID: opts.ListID}
	if err := s.CreateImport(ctx, im); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SaveImportFile(ctx, im.ID, strings.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("SaveImportFile() = %d, %v; want %d", n, err, len(data))
	}
	if err := s.QueueImport(ctx, im.ID, opts); err != nil {
		t.Fatal(err)
	}
	return im.ID
}

// stallingReader gives the first n bytes of data, then waits for ctx.
type stallingReader struct {
	ctx  context.Context
	data string
	n    int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	k := copy(p, r.data[:r.n])
	r.data, r.n = r.data[k:], r.n-k
	return k, nil
}

// importOutcome is what an import left: its counts, its error report, and
// the state of the list and the consent ledger.
type importOutcome struct {
	Counts   [5]int64
	Report   [][]string
	Members  int64
	Consents int64
	Stats    string
}

func outcome(t *testing.T, s *models.Store, id, listID int64) importOutcome {
	t.Helper()
	im, err := s.Import(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if im.Status != models.ImportFinished {
		t.Fatalf("import %d is %s (%s), want finished", id, im.Status, im.Message)
	}
	o := importOutcome{Counts: counts(im), Report: errorReport(t, s, id), Consents: consentCount(t, s)}
	s.DB().Raw("SELECT count(*) FROM subscriptions WHERE list_id = ? AND status = 'confirmed'", listID).Scan(&o.Members)
	l, err := s.List(context.Background(), listID)
	if err != nil {
		t.Fatal(err)
	}
	o.Stats = fmt.Sprintf("%+v", l)
	if i := strings.Index(o.Stats, "Confirmed"); i >= 0 {
		o.Stats = o.Stats[i:]
	}
	return o
}

// An import stopped after some batches (its node shut down) is resumed by
// another node from the stored file, and ends exactly as a run that never
// stopped: same counts, same error report line for line, same members and
// consent rows. The reference run is on SQLite, so on PostgreSQL this also
// checks that both databases report the same.
func TestImportResumedByAnotherNode(t *testing.T) {
	models.SetImportBatchRows(t, 4)
	data := resumeFile()
	ref := testdb.SQLite(t)
	refList := resumeFixture(t, ref)
	refID := uploadImport(t, ref, data, importOpts(refList.ID, models.ImportUpdate))
	if got, err := ref.ClaimImport(context.Background(), "ref", refID); err != nil || got != refID {
		t.Fatalf("ClaimImport() = %d, %v", got, err)
	}
	if err := ref.ProcessImport(context.Background(), refID, "ref"); err != nil {
		t.Fatal(err)
	}
	want := outcome(t, ref, refID, refList.ID)
	if len(want.Report) != 9 || want.Counts != [5]int64{40, 31, 0, 0, 9} {
		t.Fatalf("reference run: counts %v, report %v; want 31 inserted and 9 refused", want.Counts, want.Report)
	}

	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := resumeFixture(t, s)
		id := uploadImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
		if got, err := s.ClaimImport(ctx, "node-a", 0); err != nil || got != id {
			t.Fatalf("ClaimImport(node-a) = %d, %v; want %d", got, err, id)
		}
		if got, err := s.ClaimImport(ctx, "node-b", 0); err != nil || got != 0 {
			t.Fatalf("ClaimImport(node-b) while node-a holds it = %d, %v; want nothing", got, err)
		}
		// Node A reads the header and 24 rows (six batches), then its
		// reader stalls and the node stops.
		cut := 0
		for range 25 {
			cut += strings.IndexByte(data[cut:], '\n') + 1
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- s.ProcessImportFrom(runCtx, id, "node-a", &stallingReader{ctx: runCtx, data: data, n: cut})
		}()
		deadline := time.Now().Add(20 * time.Second)
		for {
			im, err := s.Import(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if im.RowsRead == 24 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node A committed %d rows, want 24", im.RowsRead)
			}
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("node A's run = %v, want it cancelled", err)
		}
		im, err := s.Import(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if im.Status != models.ImportRunning || im.RowsRead != 24 {
			t.Fatalf("after node A stopped the import is %s with %d rows, want running with 24, for another node", im.Status, im.RowsRead)
		}
		// Node B takes it at once (node A handed the lease back).
		if got, err := s.ClaimImport(ctx, "node-b", 0); err != nil || got != id {
			t.Fatalf("ClaimImport(node-b) = %d, %v; want %d", got, err, id)
		}
		if err := s.ProcessImport(ctx, id, "node-b"); err != nil {
			t.Fatal(err)
		}
		got := outcome(t, s, id, l.ID)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("resumed import:\n%+v\nwant, as a run that never stopped:\n%+v", got, want)
		}
		if chunks := fileChunks(t, s, id); chunks != 0 {
			t.Errorf("the finished import's file is still stored (%d chunks)", chunks)
		}
		if brk, _, err := s.VerifyConsents(ctx); brk != nil || err != nil {
			t.Errorf("VerifyConsents() = %+v, %v", brk, err)
		}
	})
}

func fileChunks(t *testing.T, s *models.Store, id int64) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Raw("SELECT count(*) FROM import_chunks WHERE import_id = ?", id).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// A node whose lease ran out while it stalled commits nothing more once
// another node took the import: its next batch is refused and it stops
// without touching the import, which the other node finishes.
func TestImportLeaseFencesAStalledNode(t *testing.T) {
	models.SetImportBatchRows(t, 4)
	models.SetImportLease(t, 300*time.Millisecond)
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := newList(t, s, "News")
		var b strings.Builder
		b.WriteString("email,name,city\n")
		for i := range 20 {
			fmt.Fprintf(&b, "fenced%02d@example.com,F,Lyon\n", i)
		}
		data := b.String()
		id := uploadImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
		if got, err := s.ClaimImport(ctx, "node-a", id); err != nil || got != id {
			t.Fatalf("ClaimImport(node-a) = %d, %v", got, err)
		}
		// Node A stalls before its first batch is full, for longer than
		// its lease, as a node frozen by its machine would; node B takes
		// the import meanwhile. (A's renewals find the lease gone.)
		gate := make(chan struct{})
		var wg sync.WaitGroup
		var errA error
		wg.Add(1)
		go func() {
			defer wg.Done()
			errA = s.ProcessImportFrom(ctx, id, "node-a", io.MultiReader(strings.NewReader(data[:30]), &gatedReader{gate: gate, r: strings.NewReader(data[30:])}))
		}()
		var gotB int64
		deadline := time.Now().Add(20 * time.Second)
		for gotB == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			s.DB().Exec("UPDATE imports SET lease_until = ? WHERE id = ?", time.Now().UTC().Add(-time.Second), id) // A's renewal is late
			var err error
			if gotB, err = s.ClaimImport(ctx, "node-b", 0); err != nil {
				t.Fatal(err)
			}
		}
		if gotB != id {
			t.Fatalf("node B never claimed the import")
		}
		close(gate)
		wg.Wait()
		if errA == nil || !strings.Contains(errA.Error(), "another node took over") {
			t.Fatalf("node A's run = %v, want it stopped as taken over", errA)
		}
		if im, _ := s.Import(ctx, id); im.RowsRead != 0 || im.Status != models.ImportRunning {
			t.Fatalf("after node A stopped: %s with %d rows, want running with 0 (A committed nothing)", im.Status, im.RowsRead)
		}
		if err := s.ProcessImport(ctx, id, "node-b"); err != nil {
			t.Fatal(err)
		}
		if im, _ := s.Import(ctx, id); im.Status != models.ImportFinished || im.Inserted != 20 {
			t.Fatalf("node B's run: %s, %d inserted; want finished with 20", im.Status, im.Inserted)
		}
	})
}

type gatedReader struct {
	gate chan struct{}
	r    io.Reader
}

func (g *gatedReader) Read(p []byte) (int, error) {
	<-g.gate
	return g.r.Read(p)
}

// An upload whose import was never started is deleted with its file after
// a day; a started or a younger one is kept.
func TestDeleteAbandonedImports(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := newList(t, s, "News")
		data := "email,name,city\nold@example.com,Old,Lyon\n"
		upload := func() int64 {
			im := &models.Import{Filename: "people.csv", ListID: l.ID}
			if err := s.CreateImport(ctx, im); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SaveImportFile(ctx, im.ID, strings.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			return im.ID
		}
		abandoned, young := upload(), upload()
		started := uploadImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
		twoDaysAgo := time.Now().UTC().Add(-48 * time.Hour)
		if err := s.DB().Exec("UPDATE imports SET created_at = ? WHERE id IN (?, ?)", twoDaysAgo, abandoned, started).Error; err != nil {
			t.Fatal(err)
		}
		n, err := s.DeleteAbandonedImports(ctx, time.Now().Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("DeleteAbandonedImports() = %d, %v; want 1", n, err)
		}
		if _, err := s.Import(ctx, abandoned); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("abandoned upload: %v, want it deleted", err)
		}
		if c := fileChunks(t, s, abandoned); c != 0 {
			t.Errorf("abandoned upload's file: %d chunks left", c)
		}
		for _, id := range []int64{young, started} {
			if _, err := s.Import(ctx, id); err != nil {
				t.Errorf("import %d: %v, want it kept", id, err)
			}
			if c := fileChunks(t, s, id); c != 1 {
				t.Errorf("import %d's file: %d chunks, want 1", id, c)
			}
		}
	})
}

// On PostgreSQL a batch whose COPY or merge the database refuses is
// retried row by row, as on SQLite: only the refused row is lost, and the
// report says so.
func TestImportCopyFallsBackRowByRowOnPostgres(t *testing.T) {
	s := testdb.Postgres(t)
	ctx := context.Background()
	// A row the database refuses for a reason no check in Go foresees.
	for _, q := range []string{
		`CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END; $$ LANGUAGE plpgsql`,
		// On the consent rows, which COPY writes straight into their table.
		`CREATE TRIGGER boom BEFORE INSERT ON consents FOR EACH ROW WHEN (NEW.email = 'boom@example.com') EXECUTE FUNCTION boom()`,
	} {
		if err := s.DB().Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	l := newList(t, s, "News")
	data := "email,name,city\na@example.com,A,Lyon\nboom@example.com,B,Lyon\nc@example.com,C,Lyon\n"
	im, err := runImport(t, s, data, importOpts(l.ID, models.ImportUpdate))
	if err != nil {
		t.Fatal(err)
	}
	if im.Status != models.ImportFinished || counts(im) != [5]int64{3, 2, 0, 0, 1} {
		t.Fatalf("import = %s %v, want finished [3 2 0 0 1]", im.Status, counts(im))
	}
	rep := errorReport(t, s, im.ID)
	if len(rep) != 1 || rep[0][0] != "3" || rep[0][1] != "boom@example.com" || rep[0][2] != "The database refused this row." {
		t.Errorf("report = %v, want line 3 refused by the database", rep)
	}
	if brk, n, err := s.VerifyConsents(ctx); brk != nil || err != nil || n != 2 {
		t.Errorf("VerifyConsents() = %+v, %d, %v; want 2 rows verifying", brk, n, err)
	}
}
