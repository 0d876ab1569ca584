package models_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestProvidersRollUp(t *testing.T) {
	rules := []models.DomainRule{
		{Name: "google", Domains: "gmail.com googlemail.com", MXSuffixes: "google.com"},
		{Name: "microsoft", Domains: "hotmail.com", MXSuffixes: ".outlook.com"},
		{Name: "default", IsDefault: true},
	}
	p := models.NewProviders(rules)
	cases := []struct{ domain, mx, want string }{
		{"gmail.com", "", "google"},
		{"GoogleMail.com", "", "google"},
		{"acme.example", "aspmx.l.google.com.", "google"},
		{"acme.example", "google.com", "google"},
		{"acme.example", "notgoogle.com", models.ProviderOther},
		{"contoso.example", "contoso-example.mail.protection.outlook.com", "microsoft"},
		{"hotmail.com", "mx.elsewhere.example", "microsoft"},
		{"example.org", "", models.ProviderOther},
	}
	for _, c := range cases {
		if got := p.Of(c.domain, c.mx); got != c.want {
			t.Errorf("Of(%q, %q) = %q, want %q", c.domain, c.mx, got, c.want)
		}
	}
}

func TestCampaignReport(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		fx := testdb.ReportFixture(t, s)
		r, err := s.CampaignReport(ctx, fx.ID)
		if err != nil {
			t.Fatal(err)
		}
		rt := r.Rates
		wantCounters := models.Counters{Sent: 15, Bounced: 2, Deferred: 1, Failed: 1, Suppressed: 1}
		if rt.Counters != wantCounters || rt.HardBounces != 1 || rt.SoftBounces != 1 || rt.Complaints != 1 {
			t.Errorf("rates = %+v, want counters %+v, 1 hard DSN, 1 soft DSN, 1 complaint", rt, wantCounters)
		}
		if rt.Attempted() != 18 || !near(rt.DeliveredPct(), 100*15.0/18) || !near(rt.BouncePct(), 100*2.0/18) || !near(rt.ComplaintPct(), 100/15.0) {
			t.Errorf("attempted %d delivered %.3f%% bounce %.3f%% complaint %.3f%%", rt.Attempted(), rt.DeliveredPct(), rt.BouncePct(), rt.ComplaintPct())
		}
		wantEv := models.CampaignEvents{
			Opens:        models.EventCounts{Total: 5, Human: 3, Unique: 3, UniqueHuman: 2},
			Clicks:       models.EventCounts{Total: 4, Human: 3, Unique: 3, UniqueHuman: 2},
			Unsubscribes: models.EventCounts{Total: 1, Human: 1, Unique: 1, UniqueHuman: 1},
		}
		if *r.Events != wantEv {
			t.Errorf("events = %+v, want %+v", *r.Events, wantEv)
		}
		if rt.Opens != 3 || rt.HumanOpens != 2 || rt.Clicks != 3 || rt.HumanClicks != 2 || !near(rt.OpenPct(), 100*2.0/15) {
			t.Errorf("unique engagement = %d/%d opens %d/%d clicks, open rate %.3f", rt.Opens, rt.HumanOpens, rt.Clicks, rt.HumanClicks, rt.OpenPct())
		}
		wantLinks := []models.LinkEvents{
			{LinkID: fx.Links[0], URL: "https://example.com/a", EventCounts: models.EventCounts{Total: 2, Human: 1, Unique: 2, UniqueHuman: 1}},
			{LinkID: fx.Links[1], URL: "https://example.com/b", EventCounts: models.EventCounts{Total: 2, Human: 2, Unique: 1, UniqueHuman: 1}},
		}
		if fmt.Sprint(r.Links) != fmt.Sprint(wantLinks) {
			t.Errorf("links = %+v, want %+v", r.Links, wantLinks)
		}

		// Providers: Gmail 8 (6 sent, 1 bounced, 1 deferred now, 1 sent
		// after a deferral), Yahoo 4 sent with 1 complaint, Microsoft 3 (two
		// by MX), Apple 2 (1 bounced later), others 3.
		type o = models.Outcomes
		want := map[string]models.ProviderStats{
			"google":    {Provider: "google", Total: 8, Outcomes: o{Sent: 6, Bounced: 1}, Deferred: 2, Waiting: 1},
			"yahoo":     {Provider: "yahoo", Total: 4, Outcomes: o{Sent: 4, Complaints: 1}},
			"microsoft": {Provider: "microsoft", Total: 3, Outcomes: o{Sent: 3}},
			"apple":     {Provider: "apple", Total: 2, Outcomes: o{Sent: 1, Bounced: 1}},
			"other":     {Provider: "other", Total: 3, Outcomes: o{Sent: 1, Failed: 1}, Deferred: 1},
		}
		order := []string{"google", "yahoo", "microsoft", "apple", "other"}
		if len(r.Providers) != len(order) {
			t.Fatalf("providers = %+v, want %v", r.Providers, order)
		}
		for i, p := range r.Providers {
			if p.Provider != order[i] || p != want[p.Provider] {
				t.Errorf("provider %d = %+v, want %+v", i, p, want[order[i]])
			}
		}
		g := r.Providers[0]
		if !near(g.DeliveredPct(), 100*6.0/7) || !near(g.DeferralPct(), 25) || !near(g.BouncePct(), 100.0/7) || g.ComplaintPct() != 0 {
			t.Errorf("gmail %%: delivered %.3f deferral %.3f bounce %.3f complaint %.3f", g.DeliveredPct(), g.DeferralPct(), g.BouncePct(), g.ComplaintPct())
		}
		if y := r.Providers[1]; !near(y.ComplaintPct(), 25) || !near(y.DeliveredPct(), 100) {
			t.Errorf("yahoo %%: complaint %.3f delivered %.3f", y.ComplaintPct(), y.DeliveredPct())
		}
		if a := r.Providers[3]; !near(a.BouncePct(), 50) {
			t.Errorf("apple bounce = %.3f%%, want 50%%", a.BouncePct())
		}
		if o := r.Providers[4]; !near(o.DeliveredPct(), 50) || !near(o.DeferralPct(), 50) {
			t.Errorf("others %%: delivered %.3f deferral %.3f", o.DeliveredPct(), o.DeferralPct())
		}

		wantTL := []models.HourCount{
			{Hour: fx.Hour, Opens: 2, HumanOpens: 1, Clicks: 1, HumanClicks: 0},
			{Hour: fx.Hour.Add(time.Hour), Opens: 1, HumanOpens: 1, Clicks: 1, HumanClicks: 1},
			{Hour: fx.Hour.Add(2 * time.Hour), Opens: 2, HumanOpens: 1, Clicks: 2, HumanClicks: 2},
		}
		if fmt.Sprint(r.Timeline) != fmt.Sprint(wantTL) {
			t.Errorf("timeline = %+v\nwant %+v", r.Timeline, wantTL)
		}

		got := map[string]int64{}
		for _, b := range r.Bounces {
			got[fmt.Sprintf("%s/%s/%v/%d/%s", b.Kind, b.Category, b.SMTP, b.Code, b.Status)] += b.N
		}
		wantB := map[string]int64{"hard/user_unknown/false/0/5.1.1": 1, "soft/mailbox_full/false/0/4.2.2": 1,
			"complaint/abuse/false/0/": 1, "hard//true/550/5.1.1": 1}
		if fmt.Sprint(got) != fmt.Sprint(wantB) {
			t.Errorf("bounce groups = %v, want %v", got, wantB)
		}

		w := rt.Warnings()
		if len(w) != 2 || !w[0].Severe || !strings.Contains(w[0].Text, "11.1% of attempted deliveries bounced") || !strings.Contains(w[0].Text, "the 1 hard-bounced address is suppressed") || !w[1].Severe || !strings.Contains(w[1].Text, "0.3%") {
			t.Errorf("warnings = %+v, want a severe bounce and a severe complaint warning", w)
		}
	})
}

func TestRatesWarnings(t *testing.T) {
	cases := []struct {
		name  string
		r     models.CampaignRates
		want  []string
		sever []bool
	}{
		{"clean", models.CampaignRates{Counters: models.Counters{Sent: 10000, Bounced: 100}, Complaints: 5}, nil, nil},
		{"bounces over 2%, none hard", models.CampaignRates{Counters: models.Counters{Sent: 970, Bounced: 30}}, []string{"3.0% of attempted deliveries bounced (keep it under 2%); none was a hard bounce, so no address was suppressed"}, []bool{false}},
		{"hard bounces over 2%", models.CampaignRates{Counters: models.Counters{Sent: 970, Bounced: 30}, HardBounces: 25}, []string{"3.0% of attempted deliveries bounced (keep it under 2%); the 25 hard-bounced addresses are suppressed now"}, []bool{false}},
		{"complaints over 0.1%", models.CampaignRates{Counters: models.Counters{Sent: 10000}, Complaints: 15}, []string{"0.15% spam complaints"}, []bool{false}},
		{"complaints at 0.3%", models.CampaignRates{Counters: models.Counters{Sent: 10000}, Complaints: 30}, []string{"0.30% spam complaints, at or over"}, []bool{true}},
	}
	for _, c := range cases {
		w := c.r.Warnings()
		if len(w) != len(c.want) {
			t.Errorf("%s: Warnings() = %+v, want %d", c.name, w, len(c.want))
			continue
		}
		for i := range w {
			if !strings.Contains(w[i].Text, c.want[i]) || w[i].Severe != c.sever[i] {
				t.Errorf("%s: warning %q (severe %v), want %q (severe %v)", c.name, w[i].Text, w[i].Severe, c.want[i], c.sever[i])
			}
		}
	}
}

func TestCampaignReportEmptyAndUnknown(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.CampaignReport(ctx, 999); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("CampaignReport(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.EachRecipientOutcome(ctx, 999, func(*models.RecipientOutcome) error { return nil }); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("EachRecipientOutcome(unknown) = %v, want ErrNotFound", err)
		}
		c := &models.Campaign{Name: "Draft", FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		r, err := s.CampaignReport(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rates.Total() != 0 || len(r.Timeline) != 0 || len(r.Bounces) != 0 || len(r.Links) != 0 {
			t.Errorf("empty report = %+v", r)
		}
		for _, p := range r.Providers {
			if p.Total != 0 {
				t.Errorf("empty campaign has provider %+v", p)
			}
		}
	})
}

func TestRecipientOutcomes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		fx := testdb.ReportFixture(t, s)
		got := map[string]models.RecipientOutcome{}
		var order []string
		err := s.EachRecipientOutcome(ctx, fx.ID, func(o *models.RecipientOutcome) error {
			local, _, _ := strings.Cut(o.Email, "@")
			got[local] = *o
			order = append(order, local)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(order) != len(testdb.ReportRecipients) || order[0] != "g1" || order[len(order)-1] != "o3" {
			t.Fatalf("outcomes in order %v", order)
		}
		g1 := got["g1"]
		if g1.Opens != 2 || g1.HumanOpens != 2 || !g1.FirstOpen.Equal(fx.Hour.Add(5*time.Minute)) || g1.Clicks != 1 ||
			!g1.FirstClick.Equal(fx.Hour.Add(71*time.Minute)) || g1.Status != "sent" || g1.Code != 250 {
			t.Errorf("g1 = %+v", g1)
		}
		if g2 := got["g2"]; g2.Opens != 1 || g2.HumanOpens != 0 || g2.Clicks != 1 || g2.HumanClicks != 0 {
			t.Errorf("g2 (machine only) = %+v", g2)
		}
		if a2 := got["a2"]; a2.Status != "bounced" || a2.BounceKind != "hard" || a2.BounceCategory != "user_unknown" ||
			a2.Enhanced != "5.1.1" || a2.Diagnostic != "550 5.1.1 <a2@icloud.com>: user unknown" {
			t.Errorf("a2 = %+v", a2)
		}
		if g7 := got["g7"]; g7.Status != "bounced" || g7.Code != 550 || g7.BounceKind != "" || !strings.Contains(g7.Diagnostic, "does not exist") {
			t.Errorf("g7 = %+v", g7)
		}
		if y2, y3 := got["y2"], got["y3"]; !y2.Complained || y3.Complained || !y3.Unsubscribed || y2.Unsubscribed {
			t.Errorf("y2 = %+v, y3 = %+v", y2, y3)
		}
		if o3 := got["o3"]; o3.Status != "suppressed" || !o3.SentAt.IsZero() || !o3.LastAttemptAt.IsZero() {
			t.Errorf("o3 = %+v", o3)
		}
	})
}

func TestDeliverabilityQueries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		fx := testdb.ReportFixture(t, s)
		w, err := s.ReportWindow(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		if w.FirstDelivery != fx.Deliveries["g1"] {
			t.Errorf("window starts at delivery %d, want g1's %d", w.FirstDelivery, fx.Deliveries["g1"])
		}
		days, err := s.DailyRates(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		var att, b, comp int64
		for _, d := range days {
			att, b, comp = att+d.Attempted, b+d.Bounced, comp+d.Complaints
		}
		if len(days) != 30 || att != 18 || b != 2 || comp != 1 {
			t.Errorf("daily rates: %d days, %d attempted, %d bounced, %d complaints; want 30, 18, 2, 1", len(days), att, b, comp)
		}
		since := w.From
		groups, err := s.WindowBounceGroups(ctx, w, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(groups) != 4 {
			t.Errorf("groups since = %+v, want 4", groups)
		}
		diags, err := s.TopDiagnostics(ctx, w, 10)
		if err != nil {
			t.Fatal(err)
		}
		texts := map[string]int64{}
		for _, d := range diags {
			texts[d.Diagnostic] = d.N
		}
		if len(diags) != 3 || texts["550 5.1.1 <a2@icloud.com>: user unknown"] != 1 || texts["452 4.2.2 mailbox full"] != 1 ||
			texts["The email account that you tried to reach does not exist"] != 1 {
			t.Errorf("diagnostics = %+v", diags)
		}
		list, err := s.CampaignRatesList(ctx, models.CampaignRatesQuery{Engagement: true, Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != fx.ID || list[0].HumanOpens != 2 || list[0].HumanClicks != 2 || list[0].Complaints != 1 {
			t.Errorf("rates list = %+v", list)
		}
		provs, err := s.ProviderStatsOf(ctx, []int64{fx.ID})
		if err != nil {
			t.Fatal(err)
		}
		if provs[0].Total != 8 || provs[1].Complaints != 1 {
			t.Errorf("providers = %+v", provs)
		}
	})
}

func TestSubscriptionGrowth(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
		if err := s.CreateList(ctx, l); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			sub := &models.Subscriber{Email: fmt.Sprintf("p%d@example.com", i)}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
				t.Fatal(err)
			}
			if i < 2 {
				// Two joined 10 days ago; one of those left 5 days ago.
				s.DB().Exec("UPDATE subscriptions SET created_at = ?, updated_at = ? WHERE subscriber_id = ?",
					time.Now().AddDate(0, 0, -10), time.Now().AddDate(0, 0, -10), sub.ID)
				if i == 1 {
					s.DB().Exec("UPDATE subscriptions SET status = 'unsubscribed', updated_at = ? WHERE subscriber_id = ?",
						time.Now().AddDate(0, 0, -5), sub.ID)
				}
			}
		}
		g, err := s.SubscriptionGrowth(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		at := func(daysAgo int) int64 { return g[len(g)-1-daysAgo].N }
		if len(g) != 30 || at(0) != 4 || at(4) != 1 || at(6) != 2 || at(12) != 0 {
			t.Errorf("growth = %v; want 4 today, 1 four days ago, 2 six days ago, 0 twelve days ago", g)
		}
	})
}

// An automation's send step writes deliveries whenever people reach it,
// though its campaign started with the automation. The deliverability
// window takes its deliveries written in the window, whenever the
// automation was made, and an automation nobody reached yet hides
// nothing.
func TestDeliverabilityWindowAutomations(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		step := func(name string, started time.Time) int64 {
			t.Helper()
			a := &models.Automation{Name: name, TriggerKind: models.TriggerAPI, FromEmail: "hello@example.com"}
			steps := []models.AutomationStep{{Kind: models.StepSend, Subject: "Welcome", HTML: "<p>Hello</p>"}}
			if err := s.CreateAutomation(ctx, a, steps); err != nil {
				t.Fatal(err)
			}
			if err := s.DB().Exec("UPDATE campaigns SET started_at = ? WHERE id = ?", started, *steps[0].CampaignID).Error; err != nil {
				t.Fatal(err)
			}
			return *steps[0].CampaignID
		}
		now := time.Now().UTC()
		// Made 40 days ago; today, before the campaign below, it sent one
		// message and had one refused.
		old := step("Old welcome", now.AddDate(0, 0, -40))
		var oldFirst int64
		for i, status := range []string{models.DeliverySent, models.DeliveryBounced} {
			at := now.Add(-6 * time.Hour)
			if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, mx_host,
				last_attempt_at, created_at) VALUES (?, ?, 'example.org', ?, 1, ?, 'mx.example.org', ?, ?)`,
				old, fmt.Sprintf("w%d@example.org", i), status, at, at, at).Error; err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if err := s.DB().Raw("SELECT MAX(id) FROM deliveries").Scan(&oldFirst).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		// Made today, reached by nobody: the oldest campaign started in
		// the window, with no delivery.
		idle := step("Idle welcome", now.Add(-10*time.Hour))
		fx := testdb.ReportFixture(t, s)

		w, err := s.ReportWindow(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		if w.FirstDelivery != oldFirst {
			t.Errorf("window starts at delivery %d, want the old step's first of today, %d (the fixture's g1 is %d)",
				w.FirstDelivery, oldFirst, fx.Deliveries["g1"])
		}
		days, err := s.DailyRates(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		var att, b int64
		for _, d := range days {
			att, b = att+d.Attempted, b+d.Bounced
		}
		if att != 18+2 || b != 2+1 {
			t.Errorf("daily rates: %d attempted, %d bounced; want 20 and 3 (the fixture's and the step's)", att, b)
		}
		provs, err := s.WindowProviderStats(ctx, w, []int64{idle, fx.ID})
		if err != nil {
			t.Fatal(err)
		}
		var total, sent, bounced int64
		for _, p := range provs {
			total, sent, bounced = total+p.Total, sent+p.Sent, bounced+p.Bounced
		}
		alone, err := s.ProviderStatsOf(ctx, []int64{fx.ID})
		if err != nil {
			t.Fatal(err)
		}
		var fxTotal, fxSent, fxBounced int64
		for _, p := range alone {
			fxTotal, fxSent, fxBounced = fxTotal+p.Total, fxSent+p.Sent, fxBounced+p.Bounced
		}
		if total != fxTotal+2 || sent != fxSent+1 || bounced != fxBounced+1 {
			t.Errorf("window providers: %d deliveries, %d sent, %d bounced; want the fixture's %d, %d, %d and the step's 2, 1, 1",
				total, sent, bounced, fxTotal, fxSent, fxBounced)
		}
		// A month later the step's deliveries of today are out of the
		// window: moved back 40 days, they no longer count.
		if err := s.DB().Exec("UPDATE deliveries SET created_at = ? WHERE campaign_id = ?", now.AddDate(0, 0, -40), old).Error; err != nil {
			t.Fatal(err)
		}
		if provs, err = s.WindowProviderStats(ctx, w, []int64{idle, fx.ID}); err != nil {
			t.Fatal(err)
		}
		total = 0
		for _, p := range provs {
			total += p.Total
		}
		if total != fxTotal {
			t.Errorf("window providers with the step's deliveries 40 days old: %d deliveries, want the fixture's %d", total, fxTotal)
		}
	})
}
