package models_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// claimedCampaign materialises a campaign to n subscribers and claims all
// its deliveries for node.
func claimedCampaign(t *testing.T, s *models.Store, n int, node string) (int64, []models.Claimed) {
	return claimedCampaignB(t, s, n, node)
}

func claimedCampaignB(t testing.TB, s *models.Store, n int, node string) (int64, []models.Claimed) {
	t.Helper()
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("u%d@c.test", i)
	}
	cid := materializedCampaign(t, s, emails, nil)
	got, err := s.ClaimDeliveries(context.Background(), models.ClaimRequest{Node: node, Lease: time.Minute, Limit: n, CampaignIDs: []int64{cid}})
	if err != nil || len(got) != n {
		t.Fatalf("ClaimDeliveries() = %d, %v; want %d", len(got), err, n)
	}
	return cid, got
}

// materializedCampaign starts a campaign to one list of confirmed
// subscribers with the given addresses and materialises all its
// deliveries. beforeStart, when not nil, runs once the subscribers exist.
func materializedCampaign(t testing.TB, s *models.Store, emails []string, beforeStart func()) int64 {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: "L", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	for _, e := range emails {
		if err := s.CreateSubscriber(ctx, &models.Subscriber{Email: e},
			map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	if beforeStart != nil {
		beforeStart()
	}
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	c := &models.Campaign{Name: "c", TemplateID: &tpl.ID, FromEmail: "a@b.test"}
	if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		var err error
		if done, err = s.MaterializeCampaign(ctx, c.ID, 1000); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID
}

// One batch of mixed outcomes (more than one multi-row statement's worth):
// each row gets its own values, rows leased by another node are left
// alone, and the counters move by what changed.
func TestRecordOutcomesBatch(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 90, "a")
		at := time.Now().UTC().Truncate(time.Second)
		var outs []models.Outcome
		for i, g := range got {
			o := models.Outcome{ID: g.ID, LeaseGen: g.LeaseGen, CampaignID: cid, Attempted: true, At: at, SourceIP: "192.0.2.1", MXHost: "mx.c.test"}
			switch {
			case i < 60:
				o.Status, o.Code, o.Enhanced, o.Text, o.MessageID = models.DeliverySent, 250, "2.0.0", fmt.Sprintf("ok %d", i), fmt.Sprintf("<m%d@b.test>", i)
			case i < 70:
				o.Status, o.Code, o.Text, o.NextAttempt = models.DeliveryDeferred, 451, "try later", at.Add(time.Hour)
			case i < 80:
				o.Status, o.Attempted, o.NextAttempt = models.DeliveryQueued, false, at.Add(time.Minute)
			}
			if i < 80 {
				outs = append(outs, o)
			}
		}
		// An outcome of an earlier claim of a row (an older generation)
		// changes nothing.
		if n, err := s.RecordOutcomes(ctx, []models.Outcome{{ID: got[85].ID, LeaseGen: got[85].LeaseGen - 1, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: at}}); err != nil || n != 0 {
			t.Fatalf("RecordOutcomes(older generation) = %d, %v; want 0, nil", n, err)
		}
		n, err := s.RecordOutcomes(ctx, outs)
		if err != nil || n != 80 {
			t.Fatalf("RecordOutcomes() = %d, %v; want 80, nil", n, err)
		}
		// Written already: a second report of the same outcomes changes nothing.
		if n, err := s.RecordOutcomes(ctx, outs[:5]); err != nil || n != 0 {
			t.Fatalf("RecordOutcomes(again) = %d, %v; want 0, nil", n, err)
		}
		type row struct {
			Status, LastText, MessageID, LeaseNode, SourceIP, MxHost string
			Attempts, LastCode                                       int
			SentAt                                                   sql.NullTime
		}
		read := func(id int64) row {
			var r row
			if err := s.DB().Raw(`SELECT status, last_text, message_id, lease_node, source_ip, mx_host, attempts, last_code, sent_at
				FROM deliveries WHERE id = ?`, id).Row().Scan(&r.Status, &r.LastText, &r.MessageID, &r.LeaseNode, &r.SourceIP, &r.MxHost,
				&r.Attempts, &r.LastCode, &r.SentAt); err != nil {
				t.Fatal(err)
			}
			return r
		}
		for i, g := range got {
			r := read(g.ID)
			switch {
			case i < 60:
				if r.Status != models.DeliverySent || r.LastCode != 250 || r.LastText != fmt.Sprintf("ok %d", i) || r.MessageID != fmt.Sprintf("<m%d@b.test>", i) ||
					r.Attempts != 1 || r.LeaseNode != "" || !r.SentAt.Valid || r.SourceIP != "192.0.2.1" || r.MxHost != "mx.c.test" {
					t.Errorf("sent row %d = %+v", i, r)
				}
			case i < 70:
				if r.Status != models.DeliveryDeferred || r.LastCode != 451 || r.Attempts != 1 || r.SentAt.Valid {
					t.Errorf("deferred row %d = %+v", i, r)
				}
			case i < 80:
				if r.Status != models.DeliveryQueued || r.Attempts != 0 || r.LeaseNode != "" {
					t.Errorf("released row %d = %+v", i, r)
				}
			default:
				if r.Status != models.DeliverySending || r.LeaseNode != "a" {
					t.Errorf("untouched row %d = %+v", i, r)
				}
			}
		}
		pr, err := s.CampaignProgress(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Sent != 60 || pr.Deferred != 10 || pr.Queued != 10 || pr.Sending != 10 {
			t.Errorf("counters = %+v, want 60 sent, 10 deferred, 10 queued, 10 sending", pr.Counters)
		}
	})
}

// A delivery twice in one batch: only the first outcome applies (the
// second finds the row no longer sending), as when written one by one.
func TestRecordOutcomesDuplicateInBatch(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 3, "a")
		at := time.Now().UTC()
		outs := []models.Outcome{
			{ID: got[0].ID, LeaseGen: got[0].LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: at},
			{ID: got[1].ID, LeaseGen: got[1].LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: at},
			{ID: got[0].ID, LeaseGen: got[0].LeaseGen, CampaignID: cid, Status: models.DeliveryBounced, Attempted: true, Code: 550, At: at},
		}
		if n, err := s.RecordOutcomes(ctx, outs); err != nil || n != 2 {
			t.Fatalf("RecordOutcomes() = %d, %v; want 2, nil", n, err)
		}
		var status string
		s.DB().Raw("SELECT status FROM deliveries WHERE id = ?", got[0].ID).Scan(&status)
		if status != models.DeliverySent {
			t.Errorf("status = %q, want the first outcome (sent)", status)
		}
		pr, _ := s.CampaignProgress(ctx, cid)
		if pr.Sent != 2 || pr.Bounced != 0 || pr.Sending != 1 {
			t.Errorf("counters = %+v, want 2 sent, 1 sending", pr.Counters)
		}
	})
}
