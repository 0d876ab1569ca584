package e2e_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
)

// TestAutomationSendsInProviderReports: an automation's send step goes
// out by SMTP to people at two providers (go-smtp receivers on 127.0.0.2
// and 127.0.0.3, found through the local DNS, each its own domain rule);
// the second refuses every recipient with 550. The automation is 40 days
// old, older than the deliverability page's window, and sends today. The
// step's report and the deliverability page's per-provider table show
// the step's sends like a campaign's: three delivered at alpha, two
// bounced at beta.
func TestAutomationSendsInProviderReports(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	alpha := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	beta := e2e.StartReceiver(t, "127.0.0.3", port, e2e.ReceiverOptions{Rcpt: func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	dns.Provider(t, "mx.beta.test", "127.0.0.3", "beta.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	for i, name := range []string{"alpha", "beta"} {
		rule(t, h, url.Values{"name": {name}, "domains": {name + ".test"}, "position": {fmt.Sprint(i + 1)},
			"backoff_min_seconds": {"60"}, "backoff_max_seconds": {"600"}})
	}
	list := h.List(t, "Welcome", "a1@alpha.test", "a2@alpha.test", "a3@alpha.test", "b1@beta.test", "b2@beta.test")

	var a struct {
		Data struct {
			ID    int64
			Steps []struct {
				CampaignID *int64 `json:"campaign_id"`
			}
		}
	}
	h.MustAPI(t, http.StatusCreated, "POST", "/automations", map[string]any{"name": "Welcome", "trigger": "api", "list_id": list,
		"from_email": "hello@news.example", "status": "active", "steps": []map[string]any{
			{"kind": "send", "subject": "Welcome", "html": `<p>Welcome {{ .Subscriber.Name }}. <a href="{{ .UnsubscribeURL }}">Unsubscribe</a> {{ .Org.PostalAddress }}</p>`},
		}}, &a)
	if len(a.Data.Steps) != 1 || a.Data.Steps[0].CampaignID == nil {
		t.Fatalf("automation through the API: %+v, want one send step with its campaign", a.Data)
	}
	step := *a.Data.Steps[0].CampaignID
	// The automation was made 40 days ago: its step's campaign started
	// then, with the automation, and sends today. (The binary's clock
	// cannot be moved, so the start is written back.)
	long := time.Now().AddDate(0, 0, -40)
	if err := h.Store(t).DB().Exec("UPDATE campaigns SET started_at = ?, created_at = ? WHERE id = ?", long, long, step).Error; err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := h.Store(t).DB().Raw("SELECT subscriber_id FROM subscriptions WHERE list_id = ? ORDER BY subscriber_id", list).
		Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	var entered struct{ Data struct{ Entered int } }
	h.MustAPI(t, http.StatusOK, "POST", fmt.Sprintf("/automations/%d/enter", a.Data.ID), map[string]any{"subscriber_ids": ids}, &entered)
	if entered.Data.Entered != 5 {
		t.Fatalf("entered %d, want 5", entered.Data.Entered)
	}
	var figs struct {
		Data []struct{ Sent, Failed, Queued int64 }
	}
	e2e.Eventually(t, 60*time.Second, "the step's five outcomes", func() bool {
		h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/automations/%d/figures", a.Data.ID), nil, &figs)
		return figs.Data[0].Sent+figs.Data[0].Failed == 5
	})
	if f := figs.Data[0]; f.Sent != 3 || f.Failed != 2 {
		t.Errorf("step figures %+v, want 3 sent and 2 failed", f)
	}
	if alpha.Count() != 3 || len(beta.Refusals()) != 2 || beta.Count() != 0 {
		t.Errorf("alpha accepted %d, beta refused %d and accepted %d; want 3, 2, 0", alpha.Count(), len(beta.Refusals()), beta.Count())
	}

	// The per-provider table, on the step's report and on the
	// deliverability page (every campaign of the last 30 days).
	want := map[string][3]string{"alpha": {"3", "100.0%", "0.0%"}, "beta": {"2", "0.0%", "100.0%"}}
	d := h.Dashboard(t)
	for _, path := range []string{fmt.Sprintf("/campaigns/%d/report", step), "/deliverability/bounces"} {
		code, body := d.Get(t, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, code)
		}
		doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for prov, w := range want {
			row := doc.Find(fmt.Sprintf(`[data-testid="providers"] tr[data-provider="%s"]`, prov))
			total := strings.TrimSpace(row.Find("td").First().Text())
			delivered := strings.TrimSpace(row.Find(`[data-col="delivered"]`).Text())
			bounced := strings.TrimSpace(row.Find(`[data-col="bounced"]`).Text())
			t.Logf("%s: %s: %s deliveries, %s delivered, %s bounced", path, prov, total, delivered, bounced)
			if total != w[0] || delivered != w[1] || bounced != w[2] {
				t.Errorf("%s: provider %s shows %q deliveries, %q delivered, %q bounced; want %s, %s, %s",
					path, prov, total, delivered, bounced, w[0], w[1], w[2])
			}
		}
		if path != "/deliverability/bounces" {
			continue
		}
		// The page's other tables name the step too: its campaign's rates
		// and the two refused addresses.
		if got := strings.TrimSpace(doc.Find(fmt.Sprintf(`[data-testid="campaign-rates"] tr[data-campaign="%d"] [data-col="bounced"]`, step)).Text()); got != "2 (40.0%)" {
			t.Errorf("%s: the step's campaign row shows %q bounced, want 2 (40.0%%)", path, got)
		}
		for _, who := range []string{"b1@beta.test", "b2@beta.test"} {
			if doc.Find(fmt.Sprintf(`[data-testid="recent-bounces"] tr[data-email="%s"]`, who)).Length() != 1 {
				t.Errorf("%s: %s is not among the recent bounces", path, who)
			}
		}
	}
}
