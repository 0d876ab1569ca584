package models_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// seedBigCampaign writes a finished campaign of n deliveries spread over
// the providers, with an open event for every second delivery and a click
// for every tenth, and a bounce row for every hundredth.
func seedBigCampaign(tb testing.TB, s *models.Store, n int) int64 {
	tb.Helper()
	ctx := context.Background()
	c := &models.Campaign{Name: "Big", FromEmail: "news@example.com"}
	if err := s.CreateCampaign(ctx, c, nil); err != nil {
		tb.Fatal(err)
	}
	links, err := s.EnsureLinks(ctx, c.ID, []string{"https://example.com/1", "https://example.com/2", "https://example.com/3"})
	if err != nil {
		tb.Fatal(err)
	}
	domains := []struct{ domain, mx string }{
		{"gmail.com", "gmail-smtp-in.l.google.com"}, {"yahoo.com", "mta5.am0.yahoodns.net"},
		{"hotmail.com", "hotmail-com.olc.protection.outlook.com"}, {"icloud.com", "mx01.mail.icloud.com"},
		{"example.org", "mx.example.org"}, {"acme.example", "acme-example.mail.protection.outlook.com"},
	}
	for i := 0; i < 50; i++ {
		domains = append(domains, struct{ domain, mx string }{fmt.Sprintf("corp%d.example", i), fmt.Sprintf("mx.corp%d.example", i)})
	}
	at := time.Now().UTC().Add(-48 * time.Hour)
	tx := s.DB().Begin()
	const chunk = 500
	var b strings.Builder
	args := make([]any, 0, chunk*9)
	for lo := 0; lo < n; lo += chunk {
		b.Reset()
		args = args[:0]
		b.WriteString(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, last_code, mx_host, created_at) VALUES `)
		for i := lo; i < min(lo+chunk, n); i++ {
			if i > lo {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?)")
			d := domains[i%7*(i%len(domains)+1)%len(domains)]
			status, code := "sent", 250
			switch {
			case i%50 == 0:
				status, code = "bounced", 550
			case i%97 == 0:
				status, code = "deferred", 421
			}
			args = append(args, c.ID, fmt.Sprintf("r%d@%s", i, d.domain), d.domain, status, 1+i%3/2, at, code, d.mx, at)
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit().Error; err != nil {
		tb.Fatal(err)
	}
	var first int64
	s.DB().Raw("SELECT MIN(id) FROM deliveries WHERE campaign_id = ?", c.ID).Scan(&first)
	evs := make([]models.Event, 0, n/2+n/10)
	for i := 0; i < n; i += 2 {
		evs = append(evs, models.Event{DeliveryID: first + int64(i), CampaignID: c.ID, Kind: models.EventOpen,
			Machine: i%6 == 0, CreatedAt: at.Add(time.Duration(i%(36*60)) * time.Minute)})
		if i%10 == 0 {
			evs = append(evs, models.Event{DeliveryID: first + int64(i), CampaignID: c.ID, Kind: models.EventClick,
				LinkID: links[i%3], CreatedAt: at.Add(time.Duration(i%(36*60)) * time.Minute)})
		}
	}
	if err := s.InsertEvents(ctx, evs); err != nil {
		tb.Fatal(err)
	}
	if err := s.DB().Exec(`INSERT INTO bounces (delivery_id, campaign_id, kind, category, status, diagnostic, created_at)
		SELECT id, campaign_id, 'hard', 'user_unknown', '5.1.1', 'user unknown', created_at FROM deliveries
		WHERE campaign_id = ? AND status = 'bounced' AND id % 2 = 0`, c.ID).Error; err != nil {
		tb.Fatal(err)
	}
	if err := s.DB().Exec(`UPDATE campaigns SET status = 'finished', started_at = ?,
		sent = (SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status = 'sent'),
		bounced = (SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status = 'bounced'),
		deferred = (SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status = 'deferred') WHERE id = ?`,
		at, c.ID, c.ID, c.ID, c.ID).Error; err != nil {
		tb.Fatal(err)
	}
	return c.ID
}

// BenchmarkCampaignReport reads the whole report of a campaign of 200,000
// deliveries and 120,000 events on SQLite.
func BenchmarkCampaignReport(b *testing.B) {
	s := testdb.SQLite(b)
	id := seedBigCampaign(b, s, 200000)
	ctx := context.Background()
	for b.Loop() {
		r, err := s.CampaignReport(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if r.Rates.Total() != 200000 || r.Events.Opens.Total != 100000 || r.Events.Clicks.Total != 20000 {
			b.Fatalf("report counts %d deliveries, %d opens, %d clicks", r.Rates.Total(), r.Events.Opens.Total, r.Events.Clicks.Total)
		}
	}
}
