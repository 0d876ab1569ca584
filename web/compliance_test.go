package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// compliancePerson subscribes email to a new list "News" with form evidence
// and returns the subscriber and list ids.
func compliancePerson(t *testing.T, s *models.Store, email string) (int64, int64) {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	sub := &models.Subscriber{Email: email, Name: "Ada Lovelace", Attributes: models.Attributes{"city": "London"}}
	ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.10", UserAgent: "FormBrowser/1.0", Page: "https://example.com/join", ConsentText: "Send me the news"}
	if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, ev); err != nil {
		t.Fatal(err)
	}
	return sub.ID, l.ID
}

func rowsOf(p *page, table string) int {
	return p.Doc.Find(`[data-testid="` + table + `"] tbody tr`).Length()
}

func auditCount(t *testing.T, s *models.Store, action string) []models.AuditEntry {
	t.Helper()
	rows, _, err := s.AuditPage(context.Background(), models.AuditQuery{ActionPrefix: action})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestComplianceRolesEnforced(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		subID, listID := compliancePerson(t, s, "ada@example.com")
		admin, viewer, marketer := app.user(models.RoleAdmin), app.user(models.RoleViewer), app.user(models.RoleMarketer)

		for _, path := range []string{"/compliance", "/compliance/coverage", "/compliance/requests", "/compliance/retention",
			"/compliance/audit", fmt.Sprintf("/compliance/subscribers/%d/certificate", subID), "/compliance/people?q=ada"} {
			if p := viewer.get(path); p.StatusCode != 200 {
				t.Errorf("viewer GET %s = %d, want 200", path, p.StatusCode)
			}
			if p := marketer.get(path); p.StatusCode != 403 {
				t.Errorf("marketer GET %s = %d, want 403 by default", path, p.StatusCode)
			}
		}
		if p := viewer.get("/compliance"); p.Doc.Find(`nav.subnav a[aria-current="page"]`).Text() != "Consent" {
			t.Errorf("consent tab not marked current")
		}
		// Pages that change things are admin-only, reading or not.
		for _, path := range []string{fmt.Sprintf("/compliance/subscribers/%d/erase", subID), fmt.Sprintf("/compliance/subscribers/%d/rectify", subID),
			fmt.Sprintf("/compliance/coverage/%d/unsubscribe", listID)} {
			if p := viewer.get(path); p.StatusCode != 403 {
				t.Errorf("viewer GET %s = %d, want 403", path, p.StatusCode)
			}
		}
		if p := marketer.postForm("/compliance/access", url.Values{"marketers": {"read"}}); p.StatusCode != 403 {
			t.Fatalf("marketer granted themselves access: %d", p.StatusCode)
		}
		if p := admin.postForm("/compliance/access", url.Values{"marketers": {"read"}}); p.StatusCode != 200 {
			t.Fatalf("admin sets marketer access: %d", p.StatusCode)
		}
		if p := marketer.get("/compliance"); p.StatusCode != 200 {
			t.Errorf("marketer with read access GET /compliance = %d", p.StatusCode)
		}
		posts := map[string]url.Values{
			fmt.Sprintf("/compliance/subscribers/%d/erase", subID):     {},
			fmt.Sprintf("/compliance/subscribers/%d/export", subID):    {},
			fmt.Sprintf("/compliance/subscribers/%d/rectify", subID):   {"email": {"x@example.com"}},
			fmt.Sprintf("/compliance/coverage/%d/unsubscribe", listID): {},
			"/compliance/requests":      {"kind": {"access"}, "email": {"ada@example.com"}, "received_at": {"2024-01-01"}},
			"/compliance/retention":     {models.SettingRetainOutbox: {"1"}},
			"/compliance/retention/run": {},
			"/compliance/access":        {"marketers": {"none"}},
		}
		for path, v := range posts {
			for who, c := range map[string]*client{"viewer": viewer, "marketer": marketer} {
				if p := c.postForm(path, v); p.StatusCode != 403 {
					t.Errorf("%s POST %s = %d, want 403", who, path, p.StatusCode)
				}
			}
		}
		if sub, err := s.Subscriber(context.Background(), subID); err != nil || sub.Email != "ada@example.com" {
			t.Fatalf("subscriber changed by refused requests: %+v %v", sub, err)
		}
		if rows, _, _ := s.DSRs(context.Background(), models.DSRQuery{}); len(rows) != 0 {
			t.Fatalf("refused requests logged %d data-subject requests", len(rows))
		}
		// A viewer sees no buttons that change anything.
		cert := viewer.get(fmt.Sprintf("/compliance/subscribers/%d/certificate", subID))
		if cert.Doc.Find(`[data-testid="erase"], [data-testid="access-export"], [data-testid="rectify"]`).Length() != 0 {
			t.Error("viewer is offered erase/export/rectify buttons")
		}
	})
}

func TestComplianceConsentFiltersAndExports(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		ada, news := compliancePerson(t, s, "ada@example.com")
		bob := &models.Subscriber{Email: "bob@example.com"}
		if err := s.CreateSubscriber(ctx, bob, map[int64]string{news: models.SubConfirmed},
			models.Evidence{Source: models.SourceAdmin, LawfulBasis: models.BasisLegitimate, Note: "customer"}); err != nil {
			t.Fatal(err)
		}
		s.SetSubscriptions(ctx, ada, map[int64]string{news: models.SubUnsubscribed}, models.Evidence{Source: models.SourceOneClick})
		viewer := app.user(models.RoleViewer)
		today := time.Now().UTC().Format("2006-01-02")
		for q, want := range map[string]int{
			"":                                3,
			"source=admin":                    1,
			"basis=legitimate_interest":       1,
			"action=withdrawn":                1,
			"email=ADA@example.com":           2,
			fmt.Sprintf("list=%d", news):      3,
			fmt.Sprintf("subscriber=%d", ada): 2,
			"from=" + today + "&to=" + today:  3,
			"from=2000-01-01&to=2000-01-02":   0,
			"source=form&action=granted":      1,
		} {
			p := viewer.get("/compliance?" + q)
			if p.StatusCode != 200 || rowsOf(p, "consent-table") != want {
				t.Errorf("GET /compliance?%s = %d with %d rows, want %d", q, p.StatusCode, rowsOf(p, "consent-table"), want)
			}
		}
		bad := viewer.get("/compliance?from=31/12/2024")
		if bad.StatusCode != 422 || !strings.Contains(bad.Doc.Find(`[data-testid="err-from"]`).Text(), "YYYY-MM-DD") {
			t.Errorf("bad date: %d %q", bad.StatusCode, bad.Doc.Find(`[data-testid="err-from"]`).Text())
		}
		if p := viewer.get("/compliance/consents.csv?to=nope"); p.StatusCode != 400 || !strings.Contains(p.Body, "YYYY-MM-DD") {
			t.Errorf("export with a bad date = %d", p.StatusCode)
		}

		p := viewer.get(fmt.Sprintf("/compliance/consents.csv?subscriber=%d", ada))
		recs, err := csv.NewReader(strings.NewReader(p.Body)).ReadAll()
		if err != nil || len(recs) != 3 {
			t.Fatalf("CSV export = %d records, %v: %s", len(recs), err, p.Body)
		}
		if !strings.Contains(p.Header.Get("Content-Disposition"), "consents.csv") || recs[0][0] != "id" {
			t.Errorf("CSV headers: %v %v", p.Header, recs[0])
		}
		first := strings.Join(recs[1], "|")
		for _, want := range []string{"ada@example.com", "192.0.2.10", "FormBrowser/1.0", "https://example.com/join", "granted", "News"} {
			if !strings.Contains(first, want) {
				t.Errorf("CSV row lacks %q: %s", want, first)
			}
		}
		p = viewer.get("/compliance/consents.json?list=" + fmt.Sprint(news) + "&source=admin")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(p.Body), &rows); err != nil || len(rows) != 1 || rows[0]["email"] != "bob@example.com" || rows[0]["note"] != "customer" {
			t.Fatalf("JSON export = %v, %v: %s", rows, err, p.Body)
		}
		if p := viewer.get("/compliance/consents.json?from=2000-01-01&to=2000-01-01"); strings.TrimSpace(p.Body) != "[]" {
			t.Errorf("empty JSON export = %q", p.Body)
		}
		if got := auditCount(t, s, "consent.export"); len(got) != 3 || got[0].Actor != "viewer@example.com" {
			t.Errorf("exports audited = %+v, want 3 by the viewer", got)
		}

		// Keyset pages of 50: 60 more rows make two pages.
		for i := 0; i < 60; i++ {
			sub := &models.Subscriber{Email: fmt.Sprintf("p%02d@example.com", i)}
			s.CreateSubscriber(ctx, sub, map[int64]string{news: models.SubConfirmed}, models.Evidence{Source: models.SourceAPI})
		}
		p1 := viewer.get("/compliance?source=api")
		next, ok := p1.Doc.Find(`[data-testid="next-page"]`).Attr("href")
		if rowsOf(p1, "consent-table") != 50 || !ok || !strings.Contains(next, "source=api") {
			t.Fatalf("first page = %d rows, next %q", rowsOf(p1, "consent-table"), next)
		}
		if p2 := viewer.get(next); rowsOf(p2, "consent-table") != 10 || p2.Doc.Find(`[data-testid="next-page"]`).Length() != 0 {
			t.Errorf("second page = %d rows", rowsOf(p2, "consent-table"))
		}
	})
}

func TestComplianceCoverageActions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		_, news := compliancePerson(t, s, "ada@example.com")
		for _, e := range []string{"x1@example.com", "x2@example.com"} {
			if err := s.CreateSubscriber(ctx, &models.Subscriber{Email: e}, map[int64]string{news: models.SubConfirmed},
				models.Evidence{Source: models.SourceAdmin, Actor: "someone"}); err != nil {
				t.Fatal(err)
			}
		}
		admin := app.user(models.RoleAdmin)
		p := admin.get("/compliance/coverage")
		row := p.Doc.Find(fmt.Sprintf(`[data-testid="coverage-%d"]`, news))
		if row.Find(`[data-testid="live"]`).Text() != "3" || row.Find(`[data-testid="covered"]`).Text() != "1" || strings.TrimSpace(row.Find(`[data-testid="lacking"]`).Text()) != "2" {
			t.Fatalf("coverage row = %q", row.Text())
		}
		href, _ := row.Find(`[data-testid="show-lacking"]`).Attr("href")
		lp := admin.get(href)
		if rowsOf(lp, "lacking-table") != 2 || lp.Doc.Find(`[data-testid="repermission"]`).Length() != 1 {
			t.Fatalf("lacking page rows = %d", rowsOf(lp, "lacking-table"))
		}
		csvHref, _ := lp.Doc.Find(`[data-testid="export-lacking"]`).Attr("href")
		recs, err := csv.NewReader(strings.NewReader(admin.get(csvHref).Body)).ReadAll()
		if err != nil || len(recs) != 3 || recs[1][0] != "x1@example.com" {
			t.Fatalf("lacking CSV = %v, %v", recs, err)
		}
		confirm := admin.get(fmt.Sprintf("/compliance/coverage/%d/unsubscribe", news))
		if confirm.Doc.Find(`[data-testid="confirm-action"]`).Length() != 1 {
			t.Fatal("no confirmation before unsubscribing")
		}
		done := admin.postForm(fmt.Sprintf("/compliance/coverage/%d/unsubscribe", news), url.Values{})
		if done.StatusCode != 200 || !strings.Contains(done.Doc.Find(`[data-testid="flash"]`).Text(), "2 members") {
			t.Fatalf("unsubscribe: %d %q", done.StatusCode, done.Doc.Find(`[data-testid="flash"]`).Text())
		}
		if l := strings.TrimSpace(done.Doc.Find(fmt.Sprintf(`[data-testid="coverage-%d"] [data-testid="lacking"]`, news)).Text()); l != "0" {
			t.Errorf("lacking after unsubscribing = %q", l)
		}
		w, _, _ := s.ConsentPage(ctx, models.ConsentQuery{Action: models.ConsentWithdrawn, ListID: news})
		if len(w) != 2 || w[0].Actor != "admin@example.com" {
			t.Errorf("withdrawal rows = %+v", w)
		}
		if a := auditCount(t, s, "consent.unsubscribe_lacking"); len(a) != 1 {
			t.Errorf("unsubscribe not audited: %+v", a)
		}
	})
}

// complianceStoreDSN opens a migrated store whose DSN the test knows, so a
// separate process (the herald binary) can open the same database.
func complianceStoreDSN(t *testing.T, dialect string) (*models.Store, string) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "herald.db")
	if dialect == "postgres" {
		if testdb.PostgresDSN() == "" {
			t.Skip("HERALD_TEST_POSTGRES not set")
		}
		dsn = testdb.PostgresSchema(t, testdb.PostgresDSN())
	}
	s, err := models.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, dsn
}

// TestComplianceLedgerTamperDetected edits a consent row behind Herald's
// back and checks that both the dashboard's verification and the
// `herald consent verify` command name that row.
func TestComplianceLedgerTamperDetected(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "herald")
	build := exec.Command("go", "build", "-o", bin, "github.com/herald-mail/herald/cmd/herald")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build herald: %v\n%s", err, out)
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			s, dsn := complianceStoreDSN(t, dialect)
			app := newTestApp(t, s)
			subID, _ := compliancePerson(t, s, "ada@example.com")
			compliancePerson(t, s, "bob@example.com")
			viewer := app.user(models.RoleViewer)
			run := func() (string, error) {
				cmd := exec.Command(bin, "consent", "verify", "-db", dsn)
				cmd.Env = append(os.Environ(), "HERALD_SECRET="+strings.Repeat("s", 32))
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			p := viewer.postForm("/compliance/verify", url.Values{})
			if p.Doc.Find(`[data-testid="verify-result"] [data-status="ok"]`).Length() != 1 || p.Doc.Find(`[data-testid="verify-checked"]`).Text() != "2" {
				t.Fatalf("intact ledger: %q", p.Doc.Find(`[data-testid="verify-result"]`).Text())
			}
			if out, err := run(); err != nil || !strings.Contains(out, "OK: all 2") {
				t.Fatalf("herald consent verify on an intact ledger: %v\n%s", err, out)
			}

			rows, _ := s.ConsentsBySubscriber(context.Background(), subID)
			if err := s.DB().Exec("UPDATE consents SET lawful_basis = 'legitimate_interest' WHERE id = ?", rows[0].ID).Error; err != nil {
				t.Fatal(err)
			}
			p = viewer.postForm("/compliance/verify", url.Values{})
			if got := p.Doc.Find(`[data-testid="verify-break"]`).Text(); got != fmt.Sprint(rows[0].ID) {
				t.Errorf("verify button names row %q, want %d: %q", got, rows[0].ID, p.Doc.Find(`[data-testid="verify-result"]`).Text())
			}
			// The htmx button gets the result panel alone.
			req, _ := http.NewRequest("POST", app.http.URL+"/compliance/verify", strings.NewReader(url.Values{"_csrf": {viewer.csrf}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("HX-Request", "true")
			part := viewer.do(req)
			if part.Doc.Find("main").Length() != 0 || part.Doc.Find(`[data-testid="verify-break"]`).Text() != fmt.Sprint(rows[0].ID) {
				t.Errorf("htmx verify = %d: %s", part.StatusCode, part.Body)
			}
			out, err := run()
			if err == nil || !strings.Contains(out, fmt.Sprintf("BROKEN at consent row %d", rows[0].ID)) {
				t.Errorf("herald consent verify after the edit: %v\n%s", err, out)
			}
			if a := auditCount(t, s, "consent.verify"); len(a) != 3 || !strings.Contains(a[0].Summary, "broken at row") {
				t.Errorf("verifications audited = %+v", a)
			}
		})
	}
}

func TestComplianceDSRPaths(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		subID, _ := compliancePerson(t, s, "ada@example.com")
		otherID, _ := compliancePerson(t, s, "bob@example.com")
		admin := app.user(models.RoleAdmin)

		// Search finds the person; a typo finds nobody and says so.
		p := admin.get("/compliance/people?q=ada@")
		if rowsOf(p, "people-table") != 1 || !strings.Contains(p.Doc.Find(`[data-testid="people-table"]`).Text(), "ada@example.com") {
			t.Fatalf("people search: %q", p.Doc.Find("main").Text())
		}
		if p := admin.get("/compliance/people?q=nobody@example.com"); p.Doc.Find(`[data-testid="empty"]`).Length() != 1 {
			t.Error("an empty search has no empty state")
		}
		cert := admin.get(fmt.Sprintf("/compliance/subscribers/%d/certificate", subID))
		ct := cert.Doc.Find(`[data-testid="certificate"]`).Text()
		for _, want := range []string{"ada@example.com", "News", "192.0.2.10", "FormBrowser/1.0", "https://example.com/join", "form", "granted"} {
			if !strings.Contains(ct, want) {
				t.Errorf("certificate lacks %q", want)
			}
		}
		css := admin.get("/static/app.css")
		if !strings.Contains(cert.Body, `href="/static/app.css"`) || !strings.Contains(css.Body, "@media print") ||
			!strings.Contains(css.Body, ".certificate section { break-inside: avoid; }") {
			t.Error("certificate has no print styles")
		}
		if p := admin.get("/compliance/subscribers/999999/certificate"); p.StatusCode != 404 {
			t.Errorf("certificate of nobody = %d", p.StatusCode)
		}

		// Access: the export is everything SubjectExport holds, and is logged.
		p = admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/export", subID), url.Values{})
		var data models.SubjectData
		if err := json.Unmarshal([]byte(p.Body), &data); err != nil || data.Profile.Email != "ada@example.com" || len(data.Consents) != 1 || data.Profile.Attributes["city"] != "London" {
			t.Fatalf("access export = %v: %s", err, p.Body)
		}
		if !strings.Contains(p.Header.Get("Content-Disposition"), "attachment") {
			t.Error("access export is not a download")
		}
		reqs, _, _ := s.DSRs(ctx, models.DSRQuery{})
		if len(reqs) != 1 || reqs[0].Kind != models.DSRAccess || reqs[0].Status != models.DSRDone || reqs[0].HandledBy != "admin@example.com" {
			t.Fatalf("access request log = %+v", reqs)
		}

		// Rectification: bad input keeps what was typed; good input is audited before/after.
		bad := admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/rectify", subID), url.Values{"email": {"not-an-address"}, "name": {"Ada K"}, "attributes": {"{}"}})
		if bad.StatusCode != 422 || bad.Doc.Find(`[data-testid="err-email"]`).Length() != 1 {
			t.Fatalf("bad rectification = %d", bad.StatusCode)
		}
		if v, _ := bad.Doc.Find(`input[name="name"]`).Attr("value"); v != "Ada K" {
			t.Errorf("typed name lost: %q", v)
		}
		dup := admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/rectify", subID), url.Values{"email": {"bob@example.com"}})
		if dup.StatusCode != 422 || !strings.Contains(dup.Doc.Find(`[data-testid="err-email"]`).Text(), "Another subscriber") {
			t.Errorf("rectifying to a taken address = %d", dup.StatusCode)
		}
		ok := admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/rectify", subID), url.Values{"email": {"ada.k@example.com"}, "name": {"Ada King"}, "attributes": {`{"city":"Paris"}`}})
		if ok.StatusCode != 200 {
			t.Fatalf("rectify = %d", ok.StatusCode)
		}
		sub, _ := s.Subscriber(ctx, subID)
		if sub.Email != "ada.k@example.com" || sub.Name != "Ada King" || sub.Attributes["city"] != "Paris" {
			t.Fatalf("rectified subscriber = %+v", sub)
		}
		a := auditCount(t, s, "dsr.rectify")
		if len(a) != 1 || !strings.Contains(a[0].Summary, `"ada@example.com" → "ada.k@example.com"`) || !strings.Contains(a[0].Summary, "London") || !strings.Contains(a[0].Summary, "Paris") {
			t.Fatalf("rectify audit = %+v", a)
		}

		// A request logged by hand, received 40 days ago, is overdue.
		bad = admin.postForm("/compliance/requests", url.Values{"kind": {"forget"}, "email": {"x"}, "received_at": {"31/01/2024"}})
		if bad.StatusCode != 422 || bad.Doc.Find(`[data-testid="err-kind"]`).Length() != 1 || bad.Doc.Find(`[data-testid="err-received_at"]`).Length() != 1 {
			t.Fatalf("bad request form = %d", bad.StatusCode)
		}
		old := time.Now().UTC().AddDate(0, 0, -40).Format("2006-01-02")
		p = admin.postForm("/compliance/requests", url.Values{"kind": {"erasure"}, "email": {"ada.k@example.com"}, "received_at": {old}, "note": {"by letter"}})
		if p.StatusCode != 200 || p.Doc.Find(`[data-testid="overdue-warning"]`).Length() != 1 {
			t.Fatalf("logged request page = %d, overdue warning %d", p.StatusCode, p.Doc.Find(`[data-testid="overdue-warning"]`).Length())
		}
		list := admin.get("/compliance/requests")
		if list.Doc.Find(`[data-testid="overdue-warning"]`).Length() != 1 || list.Doc.Find(`[data-testid="overdue"]`).Length() != 1 {
			t.Errorf("requests page shows no overdue warning")
		}
		reqs, _, _ = s.DSRs(ctx, models.DSRQuery{Status: models.DSROpen})
		if len(reqs) != 1 {
			t.Fatalf("open requests = %+v", reqs)
		}
		erasure := reqs[0]
		// The erasure request cannot be spent on someone else, nor on an export.
		if p := admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/erase", otherID), url.Values{"request": {fmt.Sprint(erasure.ID)}}); p.StatusCode != 409 {
			t.Errorf("erasing another person under the request = %d", p.StatusCode)
		}
		if p := admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/export", subID), url.Values{"request": {fmt.Sprint(erasure.ID)}}); p.StatusCode != 409 {
			t.Errorf("exporting under an erasure request = %d", p.StatusCode)
		}
		if _, err := s.Subscriber(ctx, otherID); err != nil {
			t.Fatal("the other person was erased")
		}
		confirm := admin.get(fmt.Sprintf("/compliance/subscribers/%d/erase?request=%d", subID, erasure.ID))
		if confirm.Doc.Find(`[data-testid="confirm-erase"] input[name="request"]`).Length() != 1 {
			t.Fatal("erase confirmation does not carry the request")
		}
		done := admin.postForm(fmt.Sprintf("/compliance/subscribers/%d/erase", subID), url.Values{"request": {fmt.Sprint(erasure.ID)}, "note": {"letter of 3 May"}})
		if done.StatusCode != 200 || !strings.Contains(done.Doc.Find(`[data-testid="flash"]`).Text(), "erased") {
			t.Fatalf("erase = %d", done.StatusCode)
		}
		if _, err := s.Subscriber(ctx, subID); err == nil {
			t.Fatal("subscriber still exists after erasure")
		}
		r, _ := s.DSR(ctx, erasure.ID)
		if r.Status != models.DSRDone || r.SubjectEmail != "" || r.HandledAt == nil {
			t.Errorf("erasure request after erasing = %+v", r)
		}
		all, _ := s.DSRsBySubject(ctx, "ada@example.com")
		for _, r := range all {
			if r.SubjectEmail != "" {
				t.Errorf("request %d still names the erased person", r.ID)
			}
		}
		if a := auditCount(t, s, "dsr.erase"); len(a) != 1 || strings.Contains(a[0].Summary, "ada") {
			t.Errorf("erase audit = %+v", a)
		}
		// Neither the current nor the former address survives in the audit log.
		if a := auditCount(t, s, ""); strings.Contains(fmt.Sprint(a), "ada@example.com") || strings.Contains(fmt.Sprint(a), "ada.k@example.com") {
			t.Errorf("audit log still names the erased person: %+v", a)
		}
		if strings.Contains(admin.get("/compliance/requests").Body, "ada.k@example.com") {
			t.Error("the requests page still shows the erased address")
		}
		if p := admin.postForm(fmt.Sprintf("/compliance/requests/%d/close", erasure.ID), url.Values{"status": {"done"}, "outcome": {"again"}}); p.StatusCode != 409 {
			t.Errorf("closing a closed request = %d", p.StatusCode)
		}

		// Closing without acting needs an outcome.
		admin.postForm("/compliance/requests", url.Values{"kind": {"access"}, "email": {"nobody@example.com"}, "received_at": {time.Now().UTC().Format("2006-01-02")}})
		reqs, _, _ = s.DSRs(ctx, models.DSRQuery{Status: models.DSROpen})
		if p := admin.postForm(fmt.Sprintf("/compliance/requests/%d/close", reqs[0].ID), url.Values{"status": {"rejected"}}); p.StatusCode != 422 {
			t.Errorf("close without outcome = %d", p.StatusCode)
		}
		if p := admin.postForm(fmt.Sprintf("/compliance/requests/%d/close", reqs[0].ID), url.Values{"status": {"rejected"}, "outcome": {"identity not verified"}}); p.StatusCode != 200 {
			t.Errorf("close = %d", p.StatusCode)
		}
		if r, _ := s.DSR(ctx, reqs[0].ID); r.Status != models.DSRRejected || r.Outcome != "identity not verified" {
			t.Errorf("closed request = %+v", r)
		}
	})
}

func TestComplianceRetentionHandlers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		admin, viewer := app.user(models.RoleAdmin), app.user(models.RoleViewer)
		p := viewer.get("/compliance/retention")
		if v, _ := p.Doc.Find(`[data-testid="` + models.SettingRetainUnconfirmed + `"]`).Attr("value"); v != "30" {
			t.Errorf("default unconfirmed retention shown = %q", v)
		}
		if _, dis := p.Doc.Find(`[data-testid="` + models.SettingRetainOutbox + `"]`).Attr("disabled"); !dis {
			t.Error("viewer can edit retention fields")
		}
		form := url.Values{models.SettingRetainUnconfirmed: {"7"}, models.SettingRetainEvents: {"abc"}, models.SettingRetainBounces: {"0"}, models.SettingRetainOutbox: {"1"}}
		bad := admin.postForm("/compliance/retention", form)
		if bad.StatusCode != 422 || bad.Doc.Find(`[data-testid="err-`+models.SettingRetainEvents+`"]`).Length() != 1 {
			t.Fatalf("bad retention = %d", bad.StatusCode)
		}
		if v, _ := bad.Doc.Find(`[data-testid="` + models.SettingRetainEvents + `"]`).Attr("value"); v != "abc" {
			t.Errorf("typed value lost: %q", v)
		}
		if pol, _ := s.Retention(ctx); pol != models.DefaultRetention {
			t.Errorf("invalid form changed the policy: %+v", pol)
		}
		form.Set(models.SettingRetainEvents, "90")
		if p := admin.postForm("/compliance/retention", form); p.StatusCode != 200 {
			t.Fatalf("save retention = %d", p.StatusCode)
		}
		if pol, _ := s.Retention(ctx); pol != (models.RetentionPolicy{UnconfirmedDays: 7, EventDays: 90, BounceDays: 0, OutboxDays: 1}) {
			t.Errorf("saved policy = %+v", pol)
		}
		s.SaveOutbox(ctx, &models.OutboxMessage{MailFrom: "a@b", RcptTo: "c@d", Raw: "x"})
		s.DB().Exec("UPDATE outbox SET created_at = ?", time.Now().UTC().AddDate(0, 0, -2))
		p = admin.postForm("/compliance/retention/run", url.Values{})
		if !strings.Contains(p.Doc.Find(`[data-testid="flash"]`).Text(), "1 captured messages deleted") {
			t.Errorf("run now flash = %q", p.Doc.Find(`[data-testid="flash"]`).Text())
		}
		if !strings.Contains(p.Doc.Find(`[data-testid="last-run"]`).Text(), "1 captured messages deleted") {
			t.Errorf("last run = %q", p.Doc.Find(`[data-testid="last-run"]`).Text())
		}
		a := auditCount(t, s, "retention.enforce")
		if len(a) != 1 || a[0].Actor != "admin@example.com" {
			t.Errorf("retention audit = %+v", a)
		}
		if a := auditCount(t, s, "settings.retention"); len(a) != 1 {
			t.Errorf("retention change not audited: %+v", a)
		}
	})
}

func TestComplianceAuditPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		app := newTestApp(t, s)
		viewer := app.user(models.RoleViewer)
		for i := 0; i < 55; i++ {
			s.Audit(ctx, models.AuditEntry{Actor: "bulk@example.com", Action: "list.create", ObjectType: "list", ObjectID: fmt.Sprint(i), Summary: "=cmd"})
		}
		s.Audit(ctx, models.AuditEntry{Actor: "eve@example.com", Action: "subscriber.erase", ObjectType: "subscriber", ObjectID: "9", Summary: "erased"})
		for q, want := range map[string]int{
			"actor=EVE@example.com":             1,
			"action=subscriber.":                1,
			"action=list.":                      50, // first page
			"object=subscriber":                 1,
			"object=list&actor=eve@example.com": 0,
			"from=2000-01-01&to=2000-12-31":     0,
		} {
			p := viewer.get("/compliance/audit?" + q)
			if got := rowsOf(p, "audit-table"); p.StatusCode != 200 || got != want {
				t.Errorf("audit?%s = %d, %d rows; want %d", q, p.StatusCode, got, want)
			}
		}
		p := viewer.get("/compliance/audit?action=list.")
		next, _ := p.Doc.Find(`[data-testid="next-page"]`).Attr("href")
		if p2 := viewer.get(next); rowsOf(p2, "audit-table") != 5 {
			t.Errorf("second page = %d rows", rowsOf(p2, "audit-table"))
		}
		if p := viewer.get("/compliance/audit?to=tomorrow"); p.StatusCode != 422 {
			t.Errorf("bad date = %d", p.StatusCode)
		}
		csvHref, _ := viewer.get("/compliance/audit?actor=bulk@example.com").Doc.Find(`[data-testid="audit-csv"]`).Attr("href")
		recs, err := csv.NewReader(strings.NewReader(viewer.get(csvHref).Body)).ReadAll()
		if err != nil || len(recs) != 56 || recs[1][6] != "'=cmd" {
			t.Fatalf("audit CSV = %d records, %v, first %v", len(recs), err, recs[1])
		}
		if a := auditCount(t, s, "audit.export"); len(a) != 1 {
			t.Errorf("audit export not audited")
		}
	})
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
