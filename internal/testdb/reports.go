package testdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// ReportCampaign is the campaign ReportFixture seeds, with the ids tests
// look for.
type ReportCampaign struct {
	ID         int64
	Links      []int64          // https://example.com/a, https://example.com/b
	Deliveries map[string]int64 // by local part of the address, e.g. "g1"
	Hour       time.Time        // the first hour with events
}

// ReportRecipient is one seeded delivery.
type ReportRecipient struct {
	Local, Domain, Status, MX string
	Attempts, Code            int
	Enhanced, Text            string
}

// ReportRecipients are the fixture's 20 deliveries: 8 to Gmail (6 sent,
// one of them after a deferral, 1 refused with 550 5.1.1, 1 deferred
// now), 4 to Yahoo (sent), 3 to a custom domain whose MX is Microsoft's
// (sent), 2 to iCloud (sent), 3 elsewhere (sent, failed, suppressed).
var ReportRecipients = []ReportRecipient{
	{"g1", "gmail.com", "sent", "gmail-smtp-in.l.google.com", 1, 250, "2.0.0", "OK"},
	{"g2", "gmail.com", "sent", "gmail-smtp-in.l.google.com", 1, 250, "2.0.0", "OK"},
	{"g3", "gmail.com", "sent", "gmail-smtp-in.l.google.com", 2, 250, "2.0.0", "OK"},
	{"g4", "gmail.com", "sent", "gmail-smtp-in.l.google.com", 1, 250, "2.0.0", "OK"},
	{"g5", "googlemail.com", "sent", "gmail-smtp-in.l.google.com", 1, 250, "2.0.0", "OK"},
	{"g6", "gmail.com", "sent", "gmail-smtp-in.l.google.com", 1, 250, "2.0.0", "OK"},
	{"g7", "gmail.com", "bounced", "gmail-smtp-in.l.google.com", 1, 550, "5.1.1", "The email account that you tried to reach does not exist"},
	{"g8", "gmail.com", "deferred", "gmail-smtp-in.l.google.com", 1, 421, "4.7.0", "Try again later"},
	{"y1", "yahoo.com", "sent", "mta5.am0.yahoodns.net", 1, 250, "2.0.0", "OK"},
	{"y2", "yahoo.com", "sent", "mta5.am0.yahoodns.net", 1, 250, "2.0.0", "OK"},
	{"y3", "ymail.com", "sent", "mta5.am0.yahoodns.net", 1, 250, "2.0.0", "OK"},
	{"y4", "aol.com", "sent", "mta5.am0.yahoodns.net", 1, 250, "2.0.0", "OK"},
	{"m1", "contoso.example", "sent", "contoso-example.mail.protection.outlook.com", 1, 250, "2.6.0", "Queued"},
	{"m2", "contoso.example", "sent", "contoso-example.mail.protection.outlook.com", 1, 250, "2.6.0", "Queued"},
	{"m3", "hotmail.com", "sent", "hotmail-com.olc.protection.outlook.com", 1, 250, "2.6.0", "Queued"},
	{"a1", "icloud.com", "sent", "mx01.mail.icloud.com", 1, 250, "2.0.0", "OK"},
	{"a2", "icloud.com", "sent", "mx01.mail.icloud.com", 1, 250, "2.0.0", "OK"},
	{"o1", "example.org", "sent", "mx.example.org", 1, 250, "2.0.0", "OK"},
	{"o2", "example.org", "failed", "mx.example.org", 9, 451, "4.4.1", "Connection timed out"},
	{"o3", "example.net", "suppressed", "", 0, 0, "", "suppressed"},
}

// ReportFixture seeds a finished campaign with known deliveries, events,
// bounces and a complaint, through the store's own recording methods where
// they exist. After it: a2 hard-bounced later (user_unknown), g4 soft-
// bounced later (mailbox_full, still sent), y2 complained, y3
// unsubscribed; opens and clicks as the comments below say.
func ReportFixture(t testing.TB, s *models.Store) *ReportCampaign {
	t.Helper()
	ctx := context.Background()
	fail := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("report fixture: %v", err)
		}
	}
	c := &models.Campaign{Name: "March news", FromEmail: "news@example.com"}
	fail(s.CreateCampaign(ctx, c, nil))
	// Three hours ago, so the last-30-days pages include everything.
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	rc := &ReportCampaign{ID: c.ID, Deliveries: map[string]int64{}, Hour: hour}
	var counts models.Counters
	for _, r := range ReportRecipients {
		var sentAt, tried any
		if r.Status == models.DeliverySent {
			sentAt = hour.Add(-time.Hour)
		}
		if r.Attempts > 0 {
			tried = hour.Add(-time.Hour)
		}
		fail(s.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, last_code,
			last_enhanced, last_text, mx_host, last_attempt_at, sent_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, r.Local+"@"+r.Domain, r.Domain, r.Status, r.Attempts, hour, r.Code, r.Enhanced, r.Text, r.MX, tried, sentAt,
			hour.Add(-2*time.Hour)).Error)
		var id int64
		fail(s.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? AND email = ?", c.ID, r.Local+"@"+r.Domain).Scan(&id).Error)
		rc.Deliveries[r.Local] = id
		switch r.Status {
		case models.DeliverySent:
			counts.Sent++
		case models.DeliveryBounced:
			counts.Bounced++
		case models.DeliveryDeferred:
			counts.Deferred++
		case models.DeliveryFailed:
			counts.Failed++
		case models.DeliverySuppressed:
			counts.Suppressed++
		}
	}
	fail(s.DB().Exec(`UPDATE campaigns SET status = 'finished', started_at = ?, finished_at = ?, sent = ?, bounced = ?,
		deferred = ?, failed = ?, suppressed = ? WHERE id = ?`, hour.Add(-2*time.Hour), hour, counts.Sent, counts.Bounced,
		counts.Deferred, counts.Failed, counts.Suppressed, c.ID).Error)
	links, err := s.EnsureLinks(ctx, c.ID, []string{"https://example.com/a", "https://example.com/b"})
	fail(err)
	rc.Links = links
	d := rc.Deliveries
	ev := func(who string, kind string, link int64, machine bool, at time.Duration) models.Event {
		return models.Event{DeliveryID: d[who], CampaignID: c.ID, LinkID: link, Kind: kind, Machine: machine, CreatedAt: hour.Add(at)}
	}
	fail(s.InsertEvents(ctx, []models.Event{
		// hour 0: g1 opens, g2's Apple-proxy prefetch, a scanner clicks g2's link a
		ev("g1", models.EventOpen, 0, false, 5*time.Minute),
		ev("g2", models.EventOpen, 0, true, 6*time.Minute),
		ev("g2", models.EventClick, links[0], true, 6*time.Minute),
		// hour 1: g1 opens again and clicks link a
		ev("g1", models.EventOpen, 0, false, 70*time.Minute),
		ev("g1", models.EventClick, links[0], false, 71*time.Minute),
		// hour 2: y1 prefetched, then opened and clicked link b twice
		ev("y1", models.EventOpen, 0, true, 125*time.Minute),
		ev("y1", models.EventOpen, 0, false, 130*time.Minute),
		ev("y1", models.EventClick, links[1], false, 131*time.Minute),
		ev("y1", models.EventClick, links[1], false, 132*time.Minute),
		ev("y3", models.EventUnsubscribe, 0, false, 140*time.Minute),
	}))
	_, err = s.RecordBounce(ctx, models.BounceNotice{DeliveryID: d["a2"], Kind: models.BounceHard, Category: "user_unknown",
		Status: "5.1.1", Diagnostic: "550 5.1.1 <a2@icloud.com>: user unknown", RemoteMTA: "mx01.mail.icloud.com"})
	fail(err)
	_, err = s.RecordBounce(ctx, models.BounceNotice{DeliveryID: d["g4"], Kind: models.BounceSoft, Category: "mailbox_full",
		Status: "4.2.2", Diagnostic: "452 4.2.2 mailbox full", RemoteMTA: "gmail-smtp-in.l.google.com"})
	fail(err)
	_, err = s.RecordComplaint(ctx, models.BounceNotice{DeliveryID: d["y2"], Category: "abuse", RemoteMTA: "yahoo.com"})
	fail(err)
	if len(d) != len(ReportRecipients) {
		fail(fmt.Errorf("%d deliveries for %d recipients", len(d), len(ReportRecipients)))
	}
	return rc
}
