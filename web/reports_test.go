package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// cell returns the trimmed text of the first match of sel in the page.
func (p *page) cell(sel string) string {
	return strings.TrimSpace(p.Doc.Find(sel).First().Text())
}

func mustStatus(t *testing.T, p *page, want int) {
	t.Helper()
	if p.StatusCode != want {
		t.Fatalf("%s: status %d, want %d\n%.2000s", p.Request.URL.Path, p.StatusCode, want, p.Body)
	}
}

// The report of a campaign with known deliveries, events and bounces shows
// exactly the seeded figures, to a viewer, on both databases.
func TestCampaignReportPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		fx := testdb.ReportFixture(t, s)
		v := app.user(models.RoleViewer)
		p := v.get(fmt.Sprintf("/campaigns/%d/report", fx.ID))
		mustStatus(t, p, 200)

		checks := map[string]string{
			`[data-testid="delivered"]`:                                                          "15",
			`[data-testid="unique-opens"]`:                                                       "2",
			`[data-testid="unique-clicks"]`:                                                      "2",
			`[data-testid="bounced"]`:                                                            "2",
			`[data-testid="complaints"]`:                                                         "1",
			`[data-testid="unsubscribes"]`:                                                       "1",
			`[data-provider="google"] [data-col="delivered"]`:                                    "85.7%",
			`[data-provider="google"] [data-col="deferred"]`:                                     "25.0%",
			`[data-provider="google"] [data-col="bounced"]`:                                      "14.3%",
			`[data-provider="google"] [data-col="complaints"]`:                                   "0.0%",
			`[data-provider="yahoo"] [data-col="complaints"]`:                                    "25.0%",
			`[data-provider="microsoft"] [data-col="delivered"]`:                                 "100.0%",
			`[data-provider="apple"] [data-col="bounced"]`:                                       "50.0%",
			`[data-provider="other"] [data-col="delivered"]`:                                     "50.0%",
			`[data-provider="other"] [data-col="deferred"]`:                                      "50.0%",
			`[data-kind="hard"][data-category="user_unknown"][data-smtp="false"] [data-col="n"]`: "1", // a2's DSN
			`[data-kind="hard"][data-category="user_unknown"][data-smtp="true"] [data-col="n"]`:  "1", // g7's 550 5.1.1
			`[data-kind="soft"][data-category="mailbox_full"] [data-col="n"]`:                    "1",
			`[data-kind="complaint"][data-category="abuse"] [data-col="n"]`:                      "1",
		}
		for sel, want := range checks {
			if got := p.cell(sel); got != want {
				t.Errorf("%s = %q, want %q", sel, got, want)
			}
		}
		row := func(sel string) []string {
			var out []string
			p.Doc.Find(sel + " td").Each(func(_ int, s *goquery.Selection) { out = append(out, strings.TrimSpace(s.Text())) })
			return out
		}
		// Unique people, unique all, total people, total all.
		if got := strings.Join(row(`[data-testid="opens-row"]`), " "); got != "2 3 3 5" {
			t.Errorf("opens row = %q, want 2 3 3 5", got)
		}
		if got := strings.Join(row(`[data-testid="clicks-row"]`), " "); got != "2 3 3 4" {
			t.Errorf("clicks row = %q, want 2 3 3 4", got)
		}
		if got := strings.Join(row(`[data-link="https://example.com/a"]`), " "); got != "https://example.com/a 1 2 1 2" {
			t.Errorf("link a = %q", got)
		}
		if got := strings.Join(row(`[data-link="https://example.com/b"]`), " "); got != "https://example.com/b 1 1 2 2" {
			t.Errorf("link b = %q", got)
		}
		if n, _ := p.Doc.Find(`[data-testid="timeline-chart"]`).Attr("data-points"); n != "3" {
			t.Errorf("timeline has %s hourly points, want 3", n)
		}
		if p.Doc.Find(`[data-testid="timeline-chart"] polyline`).Length() != 4 {
			t.Errorf("timeline draws %d lines, want 4", p.Doc.Find(`[data-testid="timeline-chart"] polyline`).Length())
		}
		warn := p.cell(`[data-testid="warnings"]`)
		if !strings.Contains(warn, "11.1% of attempted deliveries bounced") || !strings.Contains(warn, "Gmail and Yahoo's 0.3% line") {
			t.Errorf("warnings = %q", warn)
		}
		if got := p.cell(`.mainnav a[aria-current="page"]`); got != "Campaigns" {
			t.Errorf("active nav = %q, want Campaigns", got)
		}
		if p.Doc.Find(fmt.Sprintf(`a[href="/campaigns/%d"]`, fx.ID)).Length() == 0 {
			t.Error("no link back to the campaign page")
		}
		if _, live := p.Doc.Find(`#report-body`).Attr("hx-get"); live {
			t.Error("a finished campaign's report polls for updates")
		}
	})
}

func TestCampaignReportCSV(t *testing.T) {
	app := newTestApp(t, nil)
	fx := testdb.ReportFixture(t, app.store)
	// A diagnostic a spreadsheet would run as a formula is defused.
	if _, err := app.store.RecordBounce(context.Background(), models.BounceNotice{DeliveryID: fx.Deliveries["g5"],
		Kind: models.BounceSoft, Category: "other", Diagnostic: "=HYPERLINK(\"http://evil.example\")"}); err != nil {
		t.Fatal(err)
	}
	v := app.user(models.RoleViewer)
	p := v.get(fmt.Sprintf("/campaigns/%d/report.csv", fx.ID))
	mustStatus(t, p, 200)
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type = %q", ct)
	}
	if cd := p.Header.Get("Content-Disposition"); !strings.Contains(cd, fmt.Sprintf("campaign-%d-recipients.csv", fx.ID)) {
		t.Errorf("Content-Disposition = %q", cd)
	}
	recs, err := csv.NewReader(strings.NewReader(p.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(testdb.ReportRecipients)+1 || strings.Join(recs[0], ",") != strings.Join(models.RecipientOutcomeHeader, ",") {
		t.Fatalf("csv has %d rows, header %v", len(recs), recs[0])
	}
	by := map[string]map[string]string{}
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		by[m["email"]] = m
	}
	want := map[string]map[string]string{
		"g1@gmail.com": {"status": "sent", "smtp_code": "250", "opened": "yes", "opened_by_person": "yes", "opens": "2",
			"first_open_at": fx.Hour.Add(5 * time.Minute).Format(time.RFC3339), "clicked": "yes", "clicks": "1", "complained": "no"},
		"g2@gmail.com": {"opened": "yes", "opened_by_person": "no", "clicked": "yes", "clicked_by_person": "no"},
		"g7@gmail.com": {"status": "bounced", "smtp_code": "550", "enhanced_code": "5.1.1", "bounce_kind": "",
			"diagnostic": "The email account that you tried to reach does not exist"},
		"a2@icloud.com": {"status": "bounced", "bounce_kind": "hard", "bounce_category": "user_unknown",
			"diagnostic": "550 5.1.1 <a2@icloud.com>: user unknown", "opened": "no", "opens": "0"},
		"y2@yahoo.com":       {"complained": "yes", "unsubscribed": "no"},
		"y3@ymail.com":       {"complained": "no", "unsubscribed": "yes"},
		"o3@example.net":     {"status": "suppressed", "sent_at": "", "last_attempt_at": "", "smtp_code": ""},
		"g4@gmail.com":       {"status": "sent", "bounce_kind": "soft", "bounce_category": "mailbox_full"},
		"g5@googlemail.com":  {"diagnostic": "'=HYPERLINK(\"http://evil.example\")", "bounce_kind": "soft"},
		"m1@contoso.example": {"status": "sent", "sent_at": fx.Hour.Add(-time.Hour).Format(time.RFC3339)},
	}
	for email, fields := range want {
		got, ok := by[email]
		if !ok {
			t.Errorf("no row for %s", email)
			continue
		}
		for k, v := range fields {
			if got[k] != v {
				t.Errorf("%s %s = %q, want %q", email, k, got[k], v)
			}
		}
	}
	entries, _, err := app.store.AuditPage(context.Background(), models.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || (e.Action == "campaign.export" && e.ObjectID == fmt.Sprint(fx.ID))
	}
	if !found {
		t.Error("the export was not audited")
	}
}

func TestCampaignReportNotFoundAndRoles(t *testing.T) {
	app := newTestApp(t, nil)
	fx := testdb.ReportFixture(t, app.store)
	v := app.user(models.RoleViewer)
	for _, path := range []string{"/campaigns/99999/report", "/campaigns/99999/report.csv", "/campaigns/abc/report"} {
		p := v.get(path)
		if p.StatusCode != 404 || p.Doc.Find(`[data-testid="error-page"]`).Length() == 0 {
			t.Errorf("GET %s = %d, want the 404 page", path, p.StatusCode)
		}
		if href, _ := p.Doc.Find(`[data-testid="error-home"]`).Attr("href"); href != "/" {
			t.Errorf("GET %s: the 404 page offers no way back to the dashboard", path)
		}
	}
	anon := app.client()
	for _, path := range []string{fmt.Sprintf("/campaigns/%d/report", fx.ID), fmt.Sprintf("/campaigns/%d/report.csv", fx.ID), "/deliverability/bounces"} {
		p := anon.get(path)
		if p.Request.URL.Path != "/login" || strings.Contains(p.Body, "g1@gmail.com") {
			t.Errorf("anonymous GET %s ended at %s", path, p.Request.URL.Path)
		}
	}
}

func TestCampaignReportEmptyAndLive(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	v := app.user(models.RoleViewer)
	draft := &models.Campaign{Name: "Draft", FromEmail: "news@example.com"}
	if err := app.store.CreateCampaign(ctx, draft, nil); err != nil {
		t.Fatal(err)
	}
	p := v.get(fmt.Sprintf("/campaigns/%d/report", draft.ID))
	mustStatus(t, p, 200)
	if !strings.Contains(p.cell(`[data-testid="empty"]`), "Nothing sent yet") {
		t.Errorf("empty report = %q", p.cell(`#report-body`))
	}

	// A paused campaign half way: the report shows its progress and polls.
	live := &models.Campaign{Name: "Live", FromEmail: "news@example.com"}
	if err := app.store.CreateCampaign(ctx, live, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	for i, st := range []string{"sent", "sent", "queued", "queued"} {
		app.store.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, created_at, mx_host)
			VALUES (?, ?, 'gmail.com', ?, 1, ?, ?, '')`, live.ID, fmt.Sprintf("l%d@gmail.com", i), st, at.Add(time.Hour), at)
	}
	app.store.DB().Exec(`UPDATE campaigns SET status = 'paused', started_at = ?, materialized_at = ?, sent = 2, queued = 2 WHERE id = ?`, at, at, live.ID)
	p = v.get(fmt.Sprintf("/campaigns/%d/report", live.ID))
	mustStatus(t, p, 200)
	if hx, _ := p.Doc.Find(`#report-body`).Attr("hx-get"); hx != fmt.Sprintf("/campaigns/%d/report", live.ID) {
		t.Errorf("live report hx-get = %q", hx)
	}
	if got, _ := p.Doc.Find(`[data-testid="progress"]`).Attr("value"); got != "50" {
		t.Errorf("progress = %q, want 50", got)
	}
	if got := p.cell(`[data-provider="google"] [data-col="delivered"]`); got != "100.0%" {
		t.Errorf("live gmail delivered = %q", got)
	}
	// htmx gets the report body alone.
	hreq, _ := http.NewRequest("GET", app.http.URL+fmt.Sprintf("/campaigns/%d/report", live.ID), nil)
	hreq.Header.Set("HX-Request", "true")
	part := v.do(hreq)
	mustStatus(t, part, 200)
	if strings.Contains(part.Body, "<html") || part.Doc.Find(`#report-body`).Length() != 1 {
		t.Errorf("htmx refresh is not the bare report body: %.300s", part.Body)
	}
}

func TestDashboardHome(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	v := app.user(models.RoleViewer)

	p := v.get("/")
	mustStatus(t, p, 200)
	if !strings.Contains(p.cell(`[data-testid="empty"]`), "Create a list") {
		t.Errorf("no-list dashboard = %q", p.cell(`[data-testid="empty"]`))
	}

	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := app.store.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	p = v.get("/")
	if !strings.Contains(p.cell(`[data-testid="empty"]`), "Next: add subscribers") {
		t.Errorf("empty-list dashboard = %q", p.cell(`[data-testid="empty"]`))
	}
	for i := range 3 {
		sub := &models.Subscriber{Email: fmt.Sprintf("reader%d@example.com", i)}
		if err := app.store.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	p = v.get("/")
	if !strings.Contains(p.cell(`[data-testid="empty"]`), "first campaign") || p.cell(`[data-testid="total-subscribed"]`) != "3" {
		t.Errorf("no-campaign dashboard: empty %q, subscribed %q", p.cell(`[data-testid="empty"]`), p.cell(`[data-testid="total-subscribed"]`))
	}
	if got := p.Doc.Find(`[data-testid="growth-chart"]`).AttrOr("data-points", ""); got != "30" {
		t.Errorf("growth chart points = %q, want 30", got)
	}

	fx := testdb.ReportFixture(t, app.store)
	running := &models.Campaign{Name: "Half way", FromEmail: "news@example.com"}
	app.store.CreateCampaign(ctx, running, nil)
	app.store.DB().Exec(`UPDATE campaigns SET status = 'paused', started_at = ?, materialized_at = ?, sent = 1, queued = 3 WHERE id = ?`,
		time.Now().UTC(), time.Now().UTC(), running.ID)
	if _, err := app.store.CreateSendingDomain(ctx, "news.example.com", strings.Repeat("s", 32), models.SendingDomainOptions{}); err != nil {
		t.Fatal(err)
	}
	p = v.get("/")
	mustStatus(t, p, 200)
	if p.Doc.Find(`[data-testid="empty"]`).Length() != 0 {
		t.Error("dashboard with campaigns still shows an empty state")
	}
	if got := p.Doc.Find(fmt.Sprintf(`[data-testid="running"] [data-campaign="%d"] progress`, running.ID)).AttrOr("value", ""); got != "25" {
		t.Errorf("running progress = %q, want 25", got)
	}
	rates := map[string]string{"delivered": "83.3%", "opened": "13.3%", "clicked": "13.3%", "bounced": "11.1%", "complaints": "6.7%"}
	for col, want := range rates {
		if got := p.cell(fmt.Sprintf(`[data-testid="recent-campaigns"] [data-campaign="%d"] [data-col="%s"]`, fx.ID, col)); got != want {
			t.Errorf("recent %s = %q, want %q", col, got, want)
		}
	}
	warn := p.cell(`[data-testid="warnings"]`)
	for _, want := range []string{"11.1% of attempted deliveries bounced", "0.3% line", "news.example.com"} {
		if !strings.Contains(warn, want) {
			t.Errorf("dashboard warnings lack %q: %q", want, warn)
		}
	}
}

func TestBouncesReportPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		fx := testdb.ReportFixture(t, s)
		v := app.user(models.RoleViewer)
		p := v.get("/deliverability/bounces")
		mustStatus(t, p, 200)
		if got := p.cell(`.subnav a[aria-current="page"]`); got != "Bounces & complaints" {
			t.Errorf("active tab = %q", got)
		}
		if got := p.cell(`.mainnav a[aria-current="page"]`); got != "Deliverability" {
			t.Errorf("active nav = %q", got)
		}
		row := fmt.Sprintf(`[data-testid="campaign-rates"] [data-campaign="%d"]`, fx.ID)
		if got := p.cell(row + ` [data-col="bounced"]`); got != "2 (11.1%)" {
			t.Errorf("campaign bounces = %q", got)
		}
		if got := p.cell(row + ` [data-col="complaints"]`); got != "1 (6.7%)" {
			t.Errorf("campaign complaints = %q", got)
		}
		if got := p.cell(`[data-provider="yahoo"] [data-col="complaints"]`); got != "25.0%" {
			t.Errorf("yahoo complaints = %q", got)
		}
		if got := p.Doc.Find(`[data-testid="daily-chart"]`).AttrOr("data-points", ""); got != "30" {
			t.Errorf("daily chart points = %q, want 30", got)
		}
		if got := p.Doc.Find(`[data-kind="hard"][data-category="user_unknown"]`).Length(); got != 2 {
			t.Errorf("user_unknown rows = %d, want 2 (reported later, refused while sending)", got)
		}
		if diag := p.cell(`[data-testid="diagnostics"]`); !strings.Contains(diag, "mailbox full") || !strings.Contains(diag, "does not exist") {
			t.Errorf("diagnostics = %q", diag)
		}
		if warn := p.cell(`[data-testid="warnings"]`); !strings.Contains(warn, "0.3%") || !strings.Contains(warn, "of attempted deliveries bounced") {
			t.Errorf("warnings = %q", warn)
		}
	})
}

func TestBouncesReportPages(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	for i := range 22 {
		c := &models.Campaign{Name: fmt.Sprintf("Weekly %02d", i), FromEmail: "news@example.com"}
		if err := app.store.CreateCampaign(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		app.store.DB().Exec("UPDATE campaigns SET status = 'finished', started_at = ?, finished_at = ? WHERE id = ?",
			time.Now().UTC(), time.Now().UTC(), c.ID)
	}
	v := app.user(models.RoleViewer)
	p := v.get("/deliverability/bounces")
	mustStatus(t, p, 200)
	rows := p.Doc.Find(`[data-testid="campaign-rates"] tbody tr`)
	next, ok := p.Doc.Find(`[data-testid="next-page"]`).Attr("href")
	if rows.Length() != 20 || !ok || !strings.Contains(rows.First().Text(), "Weekly 21") {
		t.Fatalf("first page: %d rows, next %q, first %q", rows.Length(), next, rows.First().Text())
	}
	p = v.get(next)
	rows = p.Doc.Find(`[data-testid="campaign-rates"] tbody tr`)
	if rows.Length() != 2 || !strings.Contains(rows.Last().Text(), "Weekly 00") || p.Doc.Find(`[data-testid="next-page"]`).Length() != 0 {
		t.Errorf("second page: %d rows, last %q", rows.Length(), rows.Last().Text())
	}
	// A cursor that is not a number is ignored, not an error.
	mustStatus(t, v.get("/deliverability/bounces?before=abc"), 200)
}

// The per-provider table shows, of delivered messages whose connection
// was recorded, the share sent over TLS and the share whose certificate
// verified, on the campaign report and the deliverability report; a
// provider with nothing recorded shows a dash, not 0%.
func TestReportProviderTLS(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		fx := testdb.ReportFixture(t, s)
		set := func(code int16, locals ...string) {
			for _, l := range locals {
				if err := s.DB().Exec("UPDATE deliveries SET tls = ? WHERE id = ?", code, fx.Deliveries[l]).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		// Google: 6 delivered (3 verified TLS 1.3, 2 unverified, 1 plain);
		// g7 bounced over verified TLS and does not count.
		set(models.TLSCode("TLSv1.3 verified"), "g1", "g2", "g3", "g7")
		set(models.TLSCode("TLSv1.3 unverified"), "g4", "g5")
		set(models.TLSPlain, "g6")
		// Microsoft: one of three recorded, unverified TLS 1.2.
		set(models.TLSCode("TLSv1.2 unverified"), "m1")
		v := app.user(models.RoleViewer)
		for _, path := range []string{fmt.Sprintf("/campaigns/%d/report", fx.ID), "/deliverability/bounces"} {
			p := v.get(path)
			mustStatus(t, p, 200)
			checks := map[string]string{
				`[data-provider="google"] [data-col="tls"]`:             "83.3%",
				`[data-provider="google"] [data-col="tls-verified"]`:    "50.0%",
				`[data-provider="microsoft"] [data-col="tls"]`:          "100.0%",
				`[data-provider="microsoft"] [data-col="tls-verified"]`: "0.0%",
				`[data-provider="yahoo"] [data-col="tls"]`:              "—",
				`[data-provider="yahoo"] [data-col="tls-verified"]`:     "—",
			}
			for sel, want := range checks {
				if got := p.cell(sel); got != want {
					t.Errorf("%s: %s = %q, want %q", path, sel, got, want)
				}
			}
		}
		// Each recipient's row of the export says how its message went.
		p := v.get(fmt.Sprintf("/campaigns/%d/report.csv", fx.ID))
		mustStatus(t, p, 200)
		recs, err := csv.NewReader(strings.NewReader(p.Body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		col := map[string]int{}
		for i, h := range recs[0] {
			col[h] = i
		}
		got := map[string]string{}
		for _, r := range recs[1:] {
			got[r[col["email"]]] = r[col["tls"]]
		}
		for email, want := range map[string]string{"g1@gmail.com": "TLSv1.3 verified", "g4@gmail.com": "TLSv1.3 unverified",
			"g6@gmail.com": "plain text", "m1@contoso.example": "TLSv1.2 unverified", "y1@yahoo.com": ""} {
			if got[email] != want {
				t.Errorf("report.csv: tls of %s = %q, want %q", email, got[email], want)
			}
		}
	})
}
