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
	send := fs.Bool("send", false, "then send the queued first messages to a local sink, and the same message to the same people as an ordinary campaign, and compare the two rates")
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
		{Kind: models.StepSend, Subject: "Welcome", HTML: automationBenchHTML},
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
	if !*send {
		return nil
	}
	return automationBenchSend(ctx, store, a, list, *n, stdout)
}

// automationBenchHTML is the welcome: short, with the footer a campaign
// needs, so that the same message can go out as an ordinary campaign.
const automationBenchHTML = `<p>Hello {{ .Subscriber.Name }}, welcome aboard.</p>
<p><a href="https://example.com/start">Start here</a></p>
<p>{{ .Org.Name }} · {{ .Org.PostalAddress }} · <a href="{{ .UnsubscribeURL }}">Unsubscribe</a></p>`

// automationBenchSend sends the first messages the advance queued
// through the engine serve runs, to a local sink; then the same message
// to the same people as an ordinary campaign on the same engine; and
// prints both rates. The target: an automation's first step goes
// out at the campaign send rate. The campaign's time includes writing
// its recipients (the automation's were written by the advance, timed
// above).
func automationBenchSend(ctx context.Context, s *models.Store, a *models.Automation, list int64, n int, stdout io.Writer) error {
	if err := sendBenchOpen(ctx, s, 10); err != nil {
		return err
	}
	steps, err := s.AutomationSteps(ctx, a.ID, a.Version)
	if err != nil {
		return err
	}
	if len(steps) == 0 || steps[0].CampaignID == nil {
		return errors.New("bench automation: the first step has no campaign")
	}
	stepCampaign, err := s.Campaign(ctx, *steps[0].CampaignID)
	if err != nil {
		return err
	}
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "Welcome", Subject: "Welcome", HTML: automationBenchHTML}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		return err
	}
	c := &models.Campaign{Name: "Welcome as a campaign", TemplateID: &tpl.ID, FromEmail: a.FromEmail,
		TrackOpens: stepCampaign.TrackOpens, TrackClicks: stepCampaign.TrackClicks}
	if err := s.CreateCampaign(ctx, c, []int64{list}); err != nil {
		return err
	}
	sink, sinkAddr, err := startSendBenchSink()
	if err != nil {
		return err
	}
	defer killSendBenchSink(sink)
	e, stop := sendBenchEngine(s, "bench-secret", sinkAddr)
	cpu0, start := sendBenchCPU(), time.Now()
	_, stepTook, stepCPU, err := sendBenchWait(ctx, s, stepCampaign.ID, n, cpu0, start, false)
	if err != nil {
		stop()
		return err
	}
	cpu0, start = sendBenchCPU(), time.Now()
	if err := e.StartCampaign(ctx, c.ID); err != nil {
		stop()
		return err
	}
	_, campTook, campCPU, err := sendBenchWait(ctx, s, c.ID, n, cpu0, start, true)
	if err != nil {
		stop()
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	if _, got, err := stopSendBenchSink(sink); err != nil {
		return err
	} else if got != int64(2*n) {
		return fmt.Errorf("bench automation: the sink received %d messages, want %d", got, 2*n)
	}
	stepRate, campRate := float64(n)/stepTook.Seconds(), float64(n)/campTook.Seconds()
	fmt.Fprintf(stdout, "%s: the automation's first step sent %d messages in %.2fs (%.0f msg/s, %.3f ms CPU/message)\n",
		s.Dialect(), n, stepTook.Seconds(), stepRate, float64(stepCPU.Microseconds())/1000/float64(n))
	fmt.Fprintf(stdout, "%s: the same message as a campaign: %d messages in %.2fs (%.0f msg/s, %.3f ms CPU/message)\n",
		s.Dialect(), n, campTook.Seconds(), campRate, float64(campCPU.Microseconds())/1000/float64(n))
	fmt.Fprintf(stdout, "%s: automation / campaign send rate: %.0f%%\n", s.Dialect(), 100*stepRate/campRate)
	return nil
}
