package jobs

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// queueImport uploads and starts an import of data into a new list, as
// the dashboard does, without running it.
func queueImport(t *testing.T, s *models.Store, data string) int64 {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: "News " + t.Name(), Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	im := &models.Import{Filename: "people.csv", ListID: l.ID}
	if err := s.CreateImport(ctx, im); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveImportFile(ctx, im.ID, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	opts := models.ImportOptions{ListID: l.ID, Mode: models.ImportUpdate, LawfulBasis: models.BasisConsent, Source: "test",
		EmailColumn: 0, NameColumn: -1, Status: models.SubConfirmed}
	if err := s.QueueImport(ctx, im.ID, opts); err != nil {
		t.Fatal(err)
	}
	return im.ID
}

func waitImport(t *testing.T, s *models.Store, id int64) *models.Import {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		im, err := s.Import(context.Background(), id)
		if err == nil && im.Done() {
			return im
		}
		if time.Now().After(deadline) {
			t.Fatalf("import %d not done: %+v, %v", id, im, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start runs an import on the node that was asked; Run picks up one that
// no node runs (its node stopped before it could claim it).
func TestImportsStartAndRun(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		here := NewImports(s, "node-a", log)
		started := queueImport(t, s, "email\na@example.com\nb@example.com\n")
		if err := here.Start(started); err != nil {
			t.Fatal(err)
		}
		if im := waitImport(t, s, started); im.Status != models.ImportFinished || im.Inserted != 2 {
			t.Fatalf("started import: %s %q, %d inserted; want finished with 2", im.Status, im.Message, im.Inserted)
		}

		left := queueImport(t, s, "email\nc@example.com\nnot-an-address\n")
		other := NewImports(s, "node-b", log)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { other.Run(ctx, 20*time.Millisecond); close(done) }()
		im := waitImport(t, s, left)
		stop()
		<-done
		if im.Status != models.ImportFinished || im.Inserted != 1 || im.Failed != 1 {
			t.Fatalf("left import: %s %q, %d inserted, %d failed; want finished with 1 and 1", im.Status, im.Message, im.Inserted, im.Failed)
		}
		// Asked to start an import that already ran, a node does nothing.
		if err := here.Start(left); err != nil {
			t.Fatal(err)
		}
		here.Wait(context.Background())
		other.Wait(context.Background())
	})
}
