package e2e_test

import (
	"bytes"
	"fmt"
	"net/mail"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
)

// A node killed with SIGKILL while an automation's first step is being
// sent, and started again, finishes the journey: every person gets step 1
// and, after the wait, step 2, counted at a real SMTP receiver; the only
// repeats are messages accepted in the last flush interval before the
// kill or on the wire, and nobody is skipped.
func TestAutomationCrashMidStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			url := ""
			if db == "postgres" {
				url = e2e.PostgresURL(t)
			}
			const n = 4000
			c := newSendCluster(t, url, 10)
			list := c.h.Audience(t, n, c.domains...)
			var a struct {
				Data struct {
					ID    int64
					Steps []struct {
						CampaignID int64 `json:"campaign_id"`
					}
				}
			}
			c.h.MustAPI(t, 201, "POST", "/automations", map[string]any{"name": "Welcome", "trigger": "api", "list_id": list,
				"from_email": "hello@news.crash.test", "status": "active", "steps": []map[string]any{
					{"kind": "send", "subject": "Step one", "html": "<p>Welcome {{ .Subscriber.Name }}</p>"},
					{"kind": "wait", "wait_seconds": 2},
					{"kind": "send", "subject": "Step two", "html": "<p>Two seconds later</p>"},
				}}, &a)
			var ids []int64
			if err := c.h.Store(t).DB().Raw("SELECT subscriber_id FROM subscriptions WHERE list_id = ? ORDER BY subscriber_id", list).
				Scan(&ids).Error; err != nil {
				t.Fatal(err)
			}
			var entered struct{ Data struct{ Entered int } }
			c.h.MustAPI(t, 200, "POST", fmt.Sprintf("/automations/%d/enter", a.Data.ID), map[string]any{"subscriber_ids": ids}, &entered)
			if entered.Data.Entered != n {
				t.Fatalf("entered %d, want %d", entered.Data.Entered, n)
			}
			killed := c.killWhen(t, c.h, n/3)
			atKill := c.rcv.Count()
			bound := c.acceptedAround(killed, flushBound)
			c.h.Restart()
			var figs struct {
				Data []struct {
					Sent, Passed int64
				}
			}
			e2e.Eventually(t, 4*time.Minute, "both steps sent to everyone", func() bool {
				c.h.MustAPI(t, 200, "GET", fmt.Sprintf("/automations/%d/figures", a.Data.ID), nil, &figs)
				return figs.Data[0].Sent == n && figs.Data[2].Sent == n
			})
			got := map[string]map[string]int{"Step one": {}, "Step two": {}}
			for _, m := range c.rcv.Messages() {
				msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
				if err != nil {
					t.Fatal(err)
				}
				subj := msg.Header.Get("Subject")
				if got[subj] == nil {
					t.Fatalf("unexpected subject %q", subj)
				}
				for _, r := range m.To {
					got[subj][r]++
				}
			}
			extra := 0
			for subj, per := range got {
				twice := 0
				for _, k := range per {
					if k > 1 {
						twice++
						extra += k - 1
					}
				}
				t.Logf("%s: %q reached %d of %d people, %d of them twice", db, subj, len(per), n, twice)
				if len(per) != n {
					t.Errorf("%q reached %d of %d people, want all", subj, len(per), n)
				}
			}
			t.Logf("%s: killed after %d messages; %d extra copies, bound %d (accepted in the %v before the kill and on the wire); figures %+v",
				db, atKill, extra, bound, flushBound, figs.Data)
			if extra > bound {
				t.Errorf("%d repeated messages, want at most %d", extra, bound)
			}
			if figs.Data[0].Passed != n || figs.Data[2].Passed != n {
				t.Errorf("figures %+v: want all %d past both send steps", figs.Data, n)
			}
		})
	}
}
