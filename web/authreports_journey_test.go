package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/authreport/reporttest"
	"github.com/herald-mail/herald/models"
)

// A viewer opens a sending domain, follows the link to its reports, reads
// who sends as the domain (Herald's address marked, an unknown source
// flagged) and the TLS results, and narrows the period. The reports came
// in as a polled mailbox hands them over: through the Recorder.
func TestJourneyDomainReports(t *testing.T) {
	ctx := browsertest.New(t, 120*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	bg := context.Background()
	if _, err := app.store.CreateUser(bg, "viewer@example.com", "", "a long enough password", models.RoleViewer); err != nil {
		t.Fatal(err)
	}
	sd, err := app.store.CreateSendingDomain(bg, "news.example", strings.Repeat("s", 32), models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := &models.IPPool{Name: "Main"}
	if err := app.store.CreateIPPool(bg, pool); err != nil {
		t.Fatal(err)
	}
	if err := app.store.AddSendingIP(bg, &models.SendingIP{PoolID: pool.ID, Address: "192.0.2.10", HELO: "mta.news.example", Weight: 1, Active: true}); err != nil {
		t.Fatal(err)
	}
	rec, err := mailer.NewRecorder(app.store, mailer.InboundOptions{Keys: token.NewKeyring(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	for i, org := range []string{"google.test", "yahoo.test", "outlook.test"} {
		b := day.AddDate(0, 0, -(i*5 + 1))
		rows := []reporttest.Row{
			{IP: "192.0.2.10", Count: 1200 - i*100, DKIM: "pass", SPF: "pass", HeaderFrom: "news.example", DKIMDomain: "news.example", Selector: sd.Selector, DKIMResult: "pass", SPFDomain: "bounces.news.example", SPFResult: "pass"},
			{IP: "203.0.113.7", Count: 7 + i, Disposition: "quarantine", DKIM: "fail", SPF: "fail", HeaderFrom: "news.example", SPFDomain: "spoof.test", SPFResult: "fail"},
		}
		x := reporttest.DMARCXML(reporttest.Report{Org: org, ReportID: "j" + org, Domain: "news.example", Begin: b, End: b.Add(24*time.Hour - time.Second), Rows: rows})
		msg := reporttest.Message("noreply@"+org, "reports@corp.example", "Report domain: news.example",
			reporttest.Attachment{Name: org + "!news.example.xml.gz", ContentType: "application/gzip", Data: reporttest.Gzip(x)})
		if err := rec.Process(bg, mailer.InboundMessage{Raw: msg, Rcpts: []string{"reports@corp.example"}, Source: mailer.Source{Via: "imap"}}); err != nil {
			t.Fatal(err)
		}
	}
	js := reporttest.TLSJSON("google.test", "tls-1", day.AddDate(0, 0, -1),
		reporttest.TLSPolicy{Type: "sts", Domain: "bounces.news.example", Success: 1180, Failure: 12, FailureType: "certificate-expired", SendingIP: "198.51.100.2", MXHost: "mx.news.example"})
	if err := rec.Process(bg, mailer.InboundMessage{Raw: reporttest.Message("tls@google.test", "tlsrpt@bounces.news.example", "TLS report",
		reporttest.Attachment{Name: "google.test!bounces.news.example.json.gz", ContentType: "application/tlsrpt+gzip", Data: reporttest.Gzip(js)}),
		Rcpts: []string{"tlsrpt@bounces.news.example"}, Source: mailer.Source{Via: "imap"}}); err != nil {
		t.Fatal(err)
	}

	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)
	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "viewer@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.shell`)),
	)
	step("open the domain and follow the reports link",
		chromedp.Navigate(base+"/deliverability/domains"),
		chromedp.Click(chromedp.CSS(`[data-testid="domains-table"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="reports-link"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="reports-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="sources-table"]`)),
	)
	if got := text(`[data-testid="total-messages"]`); got != "3324" { // 1200+1100+1000 + 7+8+9
		t.Errorf("total messages (30 days) = %q, want 3324", got)
	}
	if got := text(`[data-testid="source-192.0.2.10"] [data-testid="herald"]`); got != "Herald" {
		t.Errorf("Herald's address badge = %q", got)
	}
	if got := text(`[data-testid="source-203.0.113.7"] [data-testid="flag"]`); !strings.HasPrefix(got, "Unknown source failing DMARC") {
		t.Errorf("unknown source flag = %q", got)
	}
	if got := text(`[data-testid="tls-failure"]`); got != "12" {
		t.Errorf("TLS failures = %q, want 12", got)
	}
	browsertest.Widths(t, ctx, "domain-reports")
	step("narrow the period to 7 days",
		chromedp.SetValue(chromedp.CSS(`[data-testid="period"]`), "7"),
		chromedp.Click(chromedp.CSS(`[data-testid="show-period"]`)),
		chromedp.WaitReady(chromedp.CSS(`[data-testid="period"] option[value="7"][selected]`)),
	)
	if got := text(`[data-testid="total-messages"]`); got != "2315" { // the 11-day-old report left out: 1200+7 and 1100+8
		t.Errorf("total messages (7 days) = %q, want 2315", got)
	}
	// A domain with no reports yet says what to do.
	other, err := app.store.CreateSendingDomain(bg, "quiet.example", strings.Repeat("s", 32), models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	step("open a domain without reports",
		chromedp.Navigate(base+"/deliverability/domains/"+itoa(other.ID)+"/reports"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="no-dmarc"]`)),
	)
	if got := text(`[data-testid="dmarc-address"]`); got != "dmarc@bounces.quiet.example" {
		t.Errorf("advised address = %q", got)
	}
	browsertest.Widths(t, ctx, "domain-reports-empty")
}
