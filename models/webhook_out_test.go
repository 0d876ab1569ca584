package models_test

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// hookEvents returns the event ids queued for a webhook, sorted, by
// claiming everything due at at.
func claimAll(t *testing.T, s *models.Store, owner string, at time.Time) []models.WebhookDelivery {
	t.Helper()
	got, err := s.ClaimWebhookDeliveries(context.Background(), owner, at, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func eventIDs(ds []models.WebhookDelivery, hook int64) []string {
	var out []string
	for _, d := range ds {
		if d.WebhookID == hook {
			out = append(out, d.EventID)
		}
	}
	sort.Strings(out)
	return out
}

func TestWebhookFeedAndDelivery(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const settle = 2 * time.Second
		t0 := time.Now().UTC().Truncate(time.Second)

		// Before any webhook: the feed starts its cursors at the end.
		c, links := eventCampaign(t, s)
		if err := s.InsertEvents(ctx, []models.Event{{DeliveryID: 1, CampaignID: c, Kind: models.EventOpen, CreatedAt: t0.Add(-time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if st, err := s.FeedWebhooks(ctx, t0, settle, 100); err != nil || st.Enqueued != 0 {
			t.Fatalf("first feed = %+v, %v; want nothing queued (history is not replayed)", st, err)
		}

		engage, err := s.CreateWebhook(ctx, "https://a.example/hook", []string{models.HookOpened, models.HookClicked, models.HookSent})
		if err != nil {
			t.Fatal(err)
		}
		people, err := s.CreateWebhook(ctx, "https://b.example/hook", []string{models.HookSubscribed, models.HookBounced})
		if err != nil {
			t.Fatal(err)
		}
		if len(engage.Secret) < 40 || engage.Secret == people.Secret {
			t.Fatalf("secrets %q and %q: want long and distinct", engage.Secret, people.Secret)
		}

		// New events: an open, a click and a one-click unsubscribe
		// (which is not an engagement event), a subscriber, a sent
		// delivery and a bounce.
		at := t0.Add(time.Second)
		if err := s.InsertEvents(ctx, []models.Event{
			{DeliveryID: 1, CampaignID: c, Kind: models.EventOpen, CreatedAt: at},
			{DeliveryID: 1, CampaignID: c, LinkID: links[0], Kind: models.EventClick, CreatedAt: at},
			{DeliveryID: 1, CampaignID: c, Kind: models.EventUnsubscribe, CreatedAt: at},
		}); err != nil {
			t.Fatal(err)
		}
		l := &models.List{Name: "News", Optin: "single", Visibility: "private"}
		if err := s.CreateList(ctx, l); err != nil {
			t.Fatal(err)
		}
		sub := &models.Subscriber{Email: "ann@example.com"}
		if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: "confirmed"}, models.Evidence{Source: models.SourceAdmin, LawfulBasis: models.BasisConsent}); err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Exec(`UPDATE campaigns SET status = 'running' WHERE id = ?`, c).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, email, domain, status, attempts, next_attempt_at, sent_at, created_at, message_id)
			VALUES (?, ?, '', 'example.com', 'sent', 1, ?, ?, ?, '<m1@x>')`, c, sub.ID, at, at, at).Error; err != nil {
			t.Fatal(err)
		}
		var delivery int64
		if err := s.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ?", c).Scan(&delivery).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Exec(`INSERT INTO bounces (delivery_id, campaign_id, subscriber_id, kind, category, status, created_at)
			VALUES (?, ?, ?, 'hard', 'unknown_user', '5.1.1', ?)`, delivery, c, sub.ID, at).Error; err != nil {
			t.Fatal(err)
		}

		// Too recent to read yet.
		if st, err := s.FeedWebhooks(ctx, at.Add(time.Second), settle, 100); err != nil || st.Enqueued != 0 {
			t.Fatalf("feed within settle = %+v, %v; want nothing queued yet", st, err)
		}
		now := at.Add(10 * time.Second)
		st, err := s.FeedWebhooks(ctx, now, settle, 100)
		if err != nil {
			t.Fatal(err)
		}
		// Again: the cursors moved, and the outbox ignores repeats.
		if again, err := s.FeedWebhooks(ctx, now.Add(time.Second), settle, 100); err != nil || again.Enqueued != 0 {
			t.Fatalf("second feed = %+v, %v; want nothing new", again, err)
		}
		due := claimAll(t, s, "node-a", now)
		if st.Enqueued != len(due) {
			t.Errorf("feed queued %d, claimed %d", st.Enqueued, len(due))
		}
		opened, clicked := eventIDs(due, engage.ID), eventIDs(due, people.ID)
		wantEngage := 3 // opened, clicked, sent
		if len(opened) != wantEngage {
			t.Errorf("engagement webhook got %v; want an open, a click and a sent", opened)
		}
		var kinds []string
		for _, d := range due {
			kinds = append(kinds, d.Event)
			var p struct {
				ID   string         `json:"id"`
				Type string         `json:"type"`
				Data map[string]any `json:"data"`
			}
			if err := json.Unmarshal([]byte(d.Payload), &p); err != nil || p.ID != d.EventID || p.Type != d.Event {
				t.Errorf("payload %s: id/type %q/%q, want %q/%q (%v)", d.Payload, p.ID, p.Type, d.EventID, d.Event, err)
			}
			if d.Event == models.HookClicked && p.Data["url"] != "https://example.com/a" {
				t.Errorf("click payload %s: want the link's URL", d.Payload)
			}
			if d.Event == models.HookSubscribed && (p.Data["status"] != "confirmed" || p.Data["list_id"] != float64(l.ID)) {
				t.Errorf("subscribed payload %s: want the list and its confirmed status", d.Payload)
			}
			if (d.Event == models.HookBounced || d.Event == models.HookSent) && p.Data["email"] != "ann@example.com" {
				t.Errorf("%s payload %s: want the recipient", d.Event, d.Payload)
			}
		}
		sort.Strings(kinds)
		if want := []string{"bounced", "clicked", "opened", "sent", "subscribed"}; !slices.Equal(kinds, want) {
			t.Errorf("events queued %v, want %v (ids %v / %v)", kinds, want, opened, clicked)
		}

		// Leased: another node gets none of them.
		if other := claimAll(t, s, "node-b", now); len(other) != 0 {
			t.Fatalf("node-b claimed %d deliveries leased to node-a", len(other))
		}
		// One fails and is retried later; the others succeed.
		var retried models.WebhookDelivery
		for i, d := range due {
			a := models.WebhookAttempt{DeliveryID: d.ID, WebhookID: d.WebhookID, Attempt: 1, At: now, Code: 200, Status: models.HookDone}
			if i == 0 {
				retried = d
				a.Code, a.Error, a.Status, a.Next = 500, "HTTP 500", models.HookPending, now.Add(30*time.Second)
			}
			if err := s.RecordWebhookAttempt(ctx, "node-a", a); err != nil {
				t.Fatal(err)
			}
		}
		if early := claimAll(t, s, "node-b", now.Add(10*time.Second)); len(early) != 0 {
			t.Fatalf("claimed %d before the retry was due", len(early))
		}
		late := claimAll(t, s, "node-b", now.Add(31*time.Second))
		if len(late) != 1 || late[0].ID != retried.ID || late[0].Attempts != 1 {
			t.Fatalf("retry claim = %+v; want delivery %d after 1 attempt", late, retried.ID)
		}
		// node-a's lease is gone: its late report changes nothing.
		if err := s.RecordWebhookAttempt(ctx, "node-a", models.WebhookAttempt{DeliveryID: retried.ID, WebhookID: retried.WebhookID,
			Attempt: 2, At: now, Status: models.HookGivenUp}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordWebhookAttempt(ctx, "node-b", models.WebhookAttempt{DeliveryID: retried.ID, WebhookID: retried.WebhookID,
			Attempt: 2, At: now.Add(31 * time.Second), Code: 204, Status: models.HookDone}); err != nil {
			t.Fatal(err)
		}
		log, err := s.WebhookLog(ctx, retried.WebhookID, 50)
		if err != nil {
			t.Fatal(err)
		}
		var mine []models.WebhookLogEntry
		for _, e := range log {
			if e.DeliveryID == retried.ID {
				mine = append(mine, e)
			}
		}
		if len(mine) != 2 || mine[0].Attempt != 2 || mine[0].Code != 204 || mine[0].Status != models.HookDone ||
			mine[1].Attempt != 1 || mine[1].Error != "HTTP 500" || !mine[1].NextAt.IsZero() {
			t.Errorf("log of the retried delivery = %+v; want attempt 2 (204) then attempt 1 (HTTP 500)", mine)
		}

		// The test event goes to a webhook whatever it subscribed to; a
		// 410 disables the webhook and its deliveries wait.
		if _, err := s.EnqueueWebhookEvents(ctx, []models.Webhook{*people}, []models.HookEvent{models.TestHookEvent(now)}, now); err != nil {
			t.Fatal(err)
		}
		test := claimAll(t, s, "node-a", now.Add(time.Minute))
		if len(test) != 1 || test[0].Event != models.HookTest || test[0].WebhookID != people.ID {
			t.Fatalf("test event claim = %+v", test)
		}
		if err := s.RecordWebhookAttempt(ctx, "node-a", models.WebhookAttempt{DeliveryID: test[0].ID, WebhookID: people.ID, Attempt: 1,
			At: now, Code: 410, Status: models.HookGivenUp, Disable: "gone"}); err != nil {
			t.Fatal(err)
		}
		if h, err := s.Webhook(ctx, people.ID); err != nil || h.Enabled || h.DisabledReason != "gone" {
			t.Fatalf("after 410: %+v, %v; want disabled, saying why", h, err)
		}
		if _, err := s.EnqueueWebhookEvents(ctx, []models.Webhook{*people}, []models.HookEvent{models.TestHookEvent(now)}, now); err != nil {
			t.Fatal(err)
		}
		if got := claimAll(t, s, "node-a", now.Add(time.Hour)); len(got) != 0 {
			t.Fatalf("claimed %d deliveries of a disabled webhook", len(got))
		}
		// Finished deliveries are pruned with their log; the pending one stays.
		if n, err := s.PruneWebhookDeliveries(ctx, now.Add(48*time.Hour)); err != nil || n != 6 {
			t.Fatalf("PruneWebhookDeliveries() = %d, %v; want the 6 finished", n, err)
		}
		if log, err := s.WebhookLog(ctx, people.ID, 10); err != nil || len(log) != 1 || log[0].Attempt != 0 {
			t.Fatalf("log after pruning = %+v, %v; want the pending test event only", log, err)
		}
		if err := s.DeleteWebhook(ctx, people.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Webhook(ctx, people.ID); err == nil {
			t.Fatal("deleted webhook still there")
		}
	})
}

// Erasing a subscriber deletes the webhook events about them, sent or
// waiting, with their log.
func TestWebhookEventsErased(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		t0 := time.Now()
		if _, err := s.FeedWebhooks(ctx, t0, 0, 100); err != nil {
			t.Fatal(err)
		}
		h, err := s.CreateWebhook(ctx, "https://a.example/hook", []string{models.HookSubscribed})
		if err != nil {
			t.Fatal(err)
		}
		l := &models.List{Name: "News", Optin: "single", Visibility: "private"}
		if err := s.CreateList(ctx, l); err != nil {
			t.Fatal(err)
		}
		var subs []int64
		for _, e := range []string{"ann@example.com", "bob@example.com"} {
			sub := &models.Subscriber{Email: e}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: "confirmed"}, models.Evidence{Source: models.SourceAdmin}); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub.ID)
		}
		if st, err := s.FeedWebhooks(ctx, time.Now().Add(time.Minute), time.Second, 100); err != nil || st.Enqueued != 2 {
			t.Fatalf("feed = %+v, %v; want both subscriptions", st, err)
		}
		due := claimAll(t, s, "n", time.Now().Add(time.Minute))
		for _, d := range due {
			if err := s.RecordWebhookAttempt(ctx, "n", models.WebhookAttempt{DeliveryID: d.ID, WebhookID: h.ID, Attempt: 1, At: time.Now(), Code: 500,
				Error: "HTTP 500", Status: models.HookPending, Next: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.EraseSubscriber(ctx, subs[0], models.Evidence{Source: models.SourceAdmin, Actor: "admin"}); err != nil {
			t.Fatal(err)
		}
		log, err := s.WebhookLog(ctx, h.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 2 || len(log) != 1 {
			t.Fatalf("log after erasure = %+v; want only bob's event", log)
		}
		var left []string
		if err := s.DB().Raw("SELECT payload FROM webhook_deliveries").Scan(&left).Error; err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || strings.Contains(left[0], "ann@example.com") || !strings.Contains(left[0], "bob@example.com") {
			t.Fatalf("payloads after erasing ann: %v", left)
		}
	})
}
