package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/herald-mail/herald/models"
)

// runBenchAutomation times n people entering an automation at once: a
// welcome series (send, wait two days, send) is active on a list, n
// subscribers are imported into it in one statement, and one advance of
// the automations (what the job runs every few seconds) takes them all in
// and queues their first message, set-based. It then times the next
// advance, when nobody is due, which is the job's steady cost.
func runBenchAutomation(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench automation", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 100_000, "people entering at once")
	database := fs.String("database-url", "", "postgres:// URL to run on (default: a new SQLite file in a temporary folder)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 100 {
		return errors.New("bench automation: -n must be at least 100")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "bench.db")
	if *database != "" {
		var drop func()
		if dsn, drop, err = benchSchema(ctx, *database); err != nil {
			return err
		}
		defer drop()
	}
	store, err := models.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	list, err := segmentSeed(ctx, store, *n)
	if err != nil {
		return err
	}
	// The people join the list after the automation is active.
	db := store.DB().WithContext(ctx)
	if err := db.Exec("DELETE FROM subscriptions WHERE list_id = ?", list).Error; err != nil {
		return err
	}
	a := &models.Automation{Name: "Welcome", TriggerKind: models.TriggerListConfirmed, ListID: &list, FromEmail: "hello@example.com",
		TZAttribute: "tz", TZDefault: "Europe/Paris"}
	steps := []models.AutomationStep{
		{Kind: models.StepSend, Subject: "Welcome", HTML: "<p>Hello {{ .Subscriber.Name }}</p>"},
		{Kind: models.StepWait, WaitDays: 2, WaitWeekday: -1},
		{Kind: models.StepSend, Subject: "Day two", HTML: "<p>Two days in</p>"},
	}
	if err := store.CreateAutomation(ctx, a, steps); err != nil {
		return err
	}
	if err := store.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
		return err
	}
	now := time.Now().UTC()
	if err := db.Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers`, list, now, now).Error; err != nil {
		return err
	}
	if store.Dialect() == models.Postgres {
		if err := db.Exec("ANALYZE").Error; err != nil {
			return err
		}
	}
	start := time.Now()
	rep, err := store.AdvanceAutomations(ctx, time.Now())
	if err != nil {
		return err
	}
	took := time.Since(start)
	if rep.Entered != int64(*n) || rep.Queued != int64(*n) {
		return fmt.Errorf("bench automation: %d entered and %d queued, want %d", rep.Entered, rep.Queued, *n)
	}
	fmt.Fprintf(stdout, "%s: %d people entered and their first message queued in %.2fs (%.0f people/s); %d runs moved past their steps\n",
		store.Dialect(), rep.Entered, took.Seconds(), float64(rep.Entered)/took.Seconds(), rep.Moved)
	start = time.Now()
	rep, err = store.AdvanceAutomations(ctx, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: the next advance, with nobody due: %.3fs (entered %d, queued %d)\n",
		store.Dialect(), time.Since(start).Seconds(), rep.Entered, rep.Queued)
	return nil
}
