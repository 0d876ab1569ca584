package outhook_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/outhook"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// An automation's webhook step, with the engine's clock passed in: each
// person reaching it is one signed POST to the webhook it names (which
// subscribed to no event at all), once, however often the engine runs.
func TestAutomationWebhookStep(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		rc := &receiver{}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		h, err := s.CreateWebhook(ctx, srv.URL+"/crm", []string{models.HookOpened})
		if err != nil {
			t.Fatal(err)
		}
		rc.secret = h.Secret
		if err := s.SetSetting(ctx, models.SettingWebhookPrivate, "on"); err != nil {
			t.Fatal(err)
		}
		a := &models.Automation{Name: "Tell the CRM", TriggerKind: models.TriggerAPI, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepWebhook, WebhookID: &h.ID},
			{Kind: models.StepSetAttr, AttrKey: "crm", AttrValue: "told"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		list := &models.List{Name: "Customers", Optin: models.OptinSingle, Visibility: models.ListPrivate}
		if err := s.CreateList(ctx, list); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, e := range []string{"ann@example.com", "bob@example.com"} {
			sub := &models.Subscriber{Email: e}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin, Actor: "test"}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, sub.ID)
		}
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		if _, err := s.EnterAutomation(ctx, a.ID, ids, false, t0); err != nil {
			t.Fatal(err)
		}
		d := &outhook.Dispatcher{Store: s, Log: slog.New(slog.DiscardHandler), Owner: "n1"}
		for i := range 2 {
			if _, err := s.AdvanceAutomations(ctx, t0.Add(time.Duration(i)*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := d.Run(ctx); err != nil {
				t.Fatal(err)
			}
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.bad) != 0 {
			t.Errorf("posts failing the signature: %v", rc.bad)
		}
		got := map[string]int{}
		for _, id := range rc.got {
			got[id]++
		}
		steps, _ := s.AutomationSteps(ctx, a.ID, 0)
		for _, id := range ids {
			want := models.HookAutomationStep + "_" + itoa(a.ID) + "_" + itoa(steps[0].ID) + "_" + itoa(id)
			if got[want] != 1 {
				t.Errorf("event %s posted %d times, want once (got %v)", want, got[want], rc.got)
			}
		}
		if len(rc.got) != 2 {
			t.Errorf("%d posts, want 2", len(rc.got))
		}
		// The step moved them on.
		sub, _ := s.Subscriber(ctx, ids[1])
		if sub.Attributes["crm"] != "told" {
			t.Errorf("bob's attributes: %v, want the next step run", sub.Attributes)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
