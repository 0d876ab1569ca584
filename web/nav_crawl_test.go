package web

import (
	"context"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// notPages are GET routes of the dashboard that are not pages a person
// navigates to: downloads, htmx fragments and the frame of a captured
// message, each reached from a page the crawl does visit; and the
// signed-out doors (sign-in, its second step, forgot password), which a
// signed-in crawl cannot see.
var notPages = []string{".csv", ".json", "/progress", "/count", "/outbox/:id/html", "/metrics", "/login", "/login/2fa", "/forgot"}

// publicPrefixes are routes outside the dashboard (no session): public
// pages, tracking, webhooks, the API, health checks and static files.
// Invitation and reset links arrive by email.
var publicPrefixes = []string{"/api/", "/static/", "/subscribe/", "/confirm/", "/p/", "/t/", "/u/", "/webhooks/", "/healthz", "/readyz", "/invite/", "/reset/"}

// seedEverything gives every kind of page something to show, so that a
// link to it can appear: lists, subscribers, a finished and a draft
// campaign, a template, an import, a data request, a sending domain, a
// rule, an IP pool with an address, a suppression, a captured message,
// a sunset rule, an automation.
func seedEverything(t *testing.T, s *models.Store) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	testdb.ReportFixture(t, s)
	listID := seedList(t, s, "Members", "m", 3)
	must(s.SetSetting(ctx, models.SettingPostalAddress, "1 Main St, Springfield"))
	rule := models.DefaultSunsetRule() // a saved rule links to its run page
	must(s.SaveSunsetRule(ctx, &rule))
	tpl := &models.Template{Kind: "campaign", Name: "Plain", Subject: "Hi",
		HTML: `<p>Hi {{.Subscriber.Name}}</p><p><a href="{{.UnsubscribeURL}}">Unsubscribe</a> {{.Org.PostalAddress}}</p>`,
		Text: "Hi {{.UnsubscribeURL}} {{.Org.PostalAddress}}"}
	must(s.CreateTemplate(ctx, tpl))
	draft := &models.Campaign{Name: "Draft news", FromEmail: "news@example.com", Subject: "News", TemplateID: &tpl.ID}
	must(s.CreateCampaign(ctx, draft, []int64{listID}))
	seedID, err := s.CreateSeedMailbox(ctx, "crawl secret", models.SeedForm{Address: "seed@gmail.example", Provider: "Gmail", IMAPURL: "imaps://u:p@imap.example:993"})
	must(err)
	_, err = s.StartPlacementTest(ctx, draft.ID, []models.SeedMailbox{{ID: seedID, Address: "seed@gmail.example", Provider: "Gmail"}}, time.Now().Add(time.Minute), false)
	must(err)
	must(s.CreateAutomation(ctx, &models.Automation{Name: "Welcome", TriggerKind: models.TriggerListConfirmed, ListID: &listID,
		FromEmail: "news@example.com"}, []models.AutomationStep{{Kind: models.StepSend, Subject: "Welcome", HTML: "<p>Hi</p>"}}))
	must(s.CreateImport(ctx, &models.Import{Filename: "people.csv", ListID: listID, Mode: models.ImportUpdate, LawfulBasis: models.BasisConsent, Source: "test"}))
	must(s.CreateDSR(ctx, &models.DSRRequest{Kind: models.DSRAccess, SubjectEmail: "m1@example.com", CreatedBy: "admin@example.com"}))
	_, err = s.CreateSendingDomain(ctx, "example.com", strings.Repeat("s", 32), models.SendingDomainOptions{})
	must(err)
	_, err = s.SaveDMARCReport(ctx, &models.DMARCReport{Domain: "example.com", OrgName: "receiver.example", ReportID: "1", Policy: "p=none",
		DateBegin: time.Now().UTC().Add(-24 * time.Hour), DateEnd: time.Now().UTC(), Via: "smtp",
		Records: []models.DMARCRecord{{SourceIP: "127.0.0.1", Count: 5, DKIM: "pass", SPF: "pass", HeaderFrom: "example.com"}}})
	must(err)
	must(s.CreateDomainRule(ctx, &models.DomainRule{Name: "Slow", Domains: "slow.example", PerSecond: 1}))
	pool := &models.IPPool{Name: "Main"}
	must(s.CreateIPPool(ctx, pool))
	must(s.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "127.0.0.1", HELO: "mail.example.com", Weight: 1, Active: true}))
	must(s.AddSuppression(ctx, "gone@example.com", "manual", "asked by phone"))
	_, err = s.CreateWebhook(ctx, "https://hooks.example.com/herald", []string{models.HookBounced})
	must(err)
	must(s.SaveOutbox(ctx, &models.OutboxMessage{MailFrom: "news@example.com", RcptTo: "m1@example.com", Subject: "Captured", HTML: "<p>x</p>", Text: "x", Raw: "Subject: Captured\r\n\r\nx"}))
}

// TestEveryPageIsReachable crawls the dashboard from the home page as an
// admin, following links only, and fails on any registered GET page no
// link reaches: a page nobody can find is a page that does not exist.
func TestEveryPageIsReachable(t *testing.T) {
	app := newTestApp(t, nil)
	seedEverything(t, app.store)
	c := app.user("admin")

	visited := map[string]bool{}
	for _, p := range crawl(t, c) {
		visited[p] = true
	}

	var unreached []string
	for _, r := range app.srv.echo.Routes() {
		if r.Method != "GET" || isPublic(r.Path) || isNotPage(r.Path) {
			continue
		}
		re := routePattern(r.Path)
		found := false
		for p := range visited {
			if re.MatchString(p) {
				found = true
				break
			}
		}
		if !found {
			unreached = append(unreached, r.Path)
		}
	}
	sort.Strings(unreached)
	if len(unreached) > 0 {
		t.Errorf("%d registered pages are linked from nowhere the crawl reached (from / through %d pages):\n  %s",
			len(unreached), len(visited), strings.Join(unreached, "\n  "))
	}
	if len(visited) < 30 {
		t.Errorf("the crawl reached only %d pages: %v", len(visited), visited)
	}
}

// crawl follows the links and search forms of the dashboard from the home
// page and returns every path it reached, in the order reached.
func crawl(t *testing.T, c *client) []string {
	t.Helper()
	visited := map[string]bool{}
	var order []string
	queue := []string{"/"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if visited[path] {
			continue
		}
		visited[path] = true
		order = append(order, path)
		p := c.get(path)
		if p.StatusCode >= 500 {
			t.Errorf("GET %s: %d", path, p.StatusCode)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			continue
		}
		// Links, and search forms (a GET form is navigation too).
		hrefs := p.Doc.Find("a[href]").Map(func(_ int, a *goquery.Selection) string { v, _ := a.Attr("href"); return v })
		p.Doc.Find("form[action]").Each(func(_ int, f *goquery.Selection) {
			if m, _ := f.Attr("method"); m == "" || strings.EqualFold(m, "get") {
				v, _ := f.Attr("action")
				hrefs = append(hrefs, v)
			}
		})
		for _, href := range hrefs {
			u, err := url.Parse(href)
			if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") || isPublic(u.Path) || strings.HasSuffix(u.Path, ".csv") || strings.HasSuffix(u.Path, ".json") {
				continue
			}
			if !visited[u.Path] {
				queue = append(queue, u.Path)
			}
		}
	}

	return order
}

func isPublic(path string) bool {
	for _, p := range publicPrefixes {
		if strings.HasPrefix(path, p) || path+"/" == p {
			return true
		}
	}
	return false
}

func isNotPage(path string) bool {
	for _, s := range notPages {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return path == "/*" || path == "/static/*"
}

// routePattern turns an echo path with :params into a regexp matching
// the concrete paths it serves.
func routePattern(path string) *regexp.Regexp {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "[^/]+"
		} else {
			parts[i] = regexp.QuoteMeta(p)
		}
	}
	return regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
}
