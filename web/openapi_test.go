package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/outhook"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func loadOpenAPI(t *testing.T, b []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("the OpenAPI document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

// TestOpenAPIDocumentValidates: what /api/v1/openapi.json serves, without
// a token, is a valid OpenAPI 3 document.
func TestOpenAPIDocumentValidates(t *testing.T) {
	app := newTestApp(t, nil)
	p := app.api("GET", "/api/v1/openapi.json", "", "")
	if p.StatusCode != 200 || !strings.HasPrefix(p.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", p.StatusCode, p.Header.Get("Content-Type"))
	}
	doc := loadOpenAPI(t, []byte(p.Body))
	if !strings.HasPrefix(doc.OpenAPI, "3.0") || doc.Paths.Len() < 30 {
		t.Fatalf("openapi %q with %d paths", doc.OpenAPI, doc.Paths.Len())
	}
	// Broken on purpose, it must fail: the loader is really checking.
	var bad map[string]any
	json.Unmarshal([]byte(p.Body), &bad)
	bad["paths"].(map[string]any)["/lists"].(map[string]any)["get"].(map[string]any)["responses"] = map[string]any{"200": map[string]any{"content": 1}}
	b, _ := json.Marshal(bad)
	if d, err := openapi3.NewLoader().LoadFromData(b); err == nil && d.Validate(context.Background()) == nil {
		t.Fatal("a broken document validates")
	}
}

// apiRouteSet is the route table's /api/v1 routes as "METHOD /path" in the
// document's form (/lists/{id}), the 404 catch-all left out.
func apiRouteSet(t *testing.T, s *Server) map[string]bool {
	param := regexp.MustCompile(`:([a-z_]+)`)
	out := map[string]bool{}
	for _, r := range s.routeTable() {
		if !strings.HasPrefix(r.path, "/api/v1/") || r.role == roleNone {
			continue
		}
		out[r.method+" "+param.ReplaceAllString(strings.TrimPrefix(r.path, "/api/v1"), "{$1}")] = true
	}
	return out
}

func docOperations(doc *openapi3.T) map[string]bool {
	out := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out[method+" "+path] = true
		}
	}
	return out
}

// TestOpenAPIMatchesRouteTable: every /api/v1 route is in the document and
// everything in the document is a route.
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	app := newTestApp(t, nil)
	doc := loadOpenAPI(t, openAPIJSON())
	routes, ops := apiRouteSet(t, app.srv), docOperations(doc)
	for k := range routes {
		if !ops[k] {
			t.Errorf("route %s is not in the OpenAPI document (web/openapi.go)", k)
		}
	}
	for k := range ops {
		if !routes[k] {
			t.Errorf("the OpenAPI document describes %s, which is no route", k)
		}
	}
	if len(routes) < 45 {
		t.Fatalf("%d API routes, want the whole API", len(routes))
	}
	t.Logf("%d routes, %d documented operations", len(routes), len(ops))
}

// apiWalker calls the API and validates each exchange against the
// document.
type apiWalker struct {
	t       *testing.T
	app     *testApp
	doc     *openapi3.T
	covered map[string]int
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// call sends method to tmpl (a document path) with args filling its
// parameters in order, plus query, as token, and wants status; the request
// and the answer must match the document. It decodes the answer into out.
func (w *apiWalker) call(token, method, tmpl string, args []any, query, body string, status int, out any) *page {
	w.t.Helper()
	path, pp := tmpl, map[string]string{}
	for i, m := range pathParam.FindAllStringSubmatch(tmpl, -1) {
		v := fmt.Sprint(args[i])
		pp[m[1]] = v
		path = strings.Replace(path, m[0], url.PathEscape(v), 1)
	}
	full := "/api/v1" + path
	if query != "" {
		full += "?" + query
	}
	p := w.app.api(method, full, token, body)
	where := method + " " + full
	if p.StatusCode >= 500 {
		w.t.Fatalf("%s: %d %s", where, p.StatusCode, p.Body)
	}
	if p.StatusCode != status {
		w.t.Fatalf("%s: %d %s, want %d", where, p.StatusCode, p.Body, status)
	}
	item := w.doc.Paths.Find(tmpl)
	if item == nil || item.GetOperation(method) == nil {
		w.t.Fatalf("%s: %s %s is not in the document", where, method, tmpl)
	}
	req, _ := http.NewRequest(method, w.app.http.URL+full, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: pp,
		Route:   &routers.Route{Spec: w.doc, Path: tmpl, PathItem: item, Method: method, Operation: item.GetOperation(method)},
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if status < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			w.t.Errorf("%s: the request does not match the document: %v", where, err)
		}
	}
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: p.StatusCode, Header: p.Header, Body: io.NopCloser(bytes.NewReader([]byte(p.Body))),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}})
	if err != nil {
		w.t.Errorf("%s: the %d answer does not match the document: %v\n%.600s", where, p.StatusCode, err, p.Body)
	}
	w.covered[method+" "+tmpl]++
	if out != nil {
		if err := json.Unmarshal([]byte(p.Body), out); err != nil {
			w.t.Fatalf("%s: %v", where, err)
		}
	}
	return p
}

type idData struct{ Data struct{ ID int64 } }

// TestOpenAPIWalksEveryPath calls every operation of the document against
// the real server on real data (SQLite, and PostgreSQL when configured),
// answers of success and of refusal alike, and validates each request and
// answer against the document.
func TestOpenAPIWalksEveryPath(t *testing.T) {
	testdb.Each(t, func(t *testing.T, store *models.Store) {
		ns := e2e.StartDNS(t)
		app := newTestAppWith(t, store, func(c *config.Config) { c.DNSServer = ns.Addr })
		walkAPI(t, app, ns)
	})
}

func walkAPI(t *testing.T, app *testApp, ns *e2e.DNS) {
	ctx := context.Background()
	tok := map[string]string{}
	for _, r := range []string{models.RoleViewer, models.RoleMarketer, models.RoleAdmin} {
		u, err := app.store.CreateUser(ctx, r+"@example.com", "", "correct horse battery", r)
		if err != nil {
			t.Fatal(err)
		}
		if tok[r], _, err = app.store.CreateAPIToken(ctx, u.ID, "walk"); err != nil {
			t.Fatal(err)
		}
	}
	V, M, A := tok[models.RoleViewer], tok[models.RoleMarketer], tok[models.RoleAdmin]
	app.store.SetSetting(ctx, models.SettingPostalAddress, "1 Herald Way, Lyon")

	spec := app.api("GET", "/api/v1/openapi.json", "", "")
	w := &apiWalker{t: t, app: app, doc: loadOpenAPI(t, []byte(spec.Body)), covered: map[string]int{}}
	w.call("", "GET", "/openapi.json", nil, "", "", 200, nil)
	w.call("", "GET", "/lists", nil, "", "", 401, nil)

	// Lists, subscribers, templates.
	var list idData
	w.call(M, "POST", "/lists", nil, "", `{"name":"News","optin":"single"}`, 201, &list)
	w.call(M, "POST", "/lists", nil, "", `{"name":""}`, 422, nil)
	w.call(V, "POST", "/lists", nil, "", `{"name":"x"}`, 403, nil)
	w.call(V, "GET", "/lists", nil, "", "", 200, nil)
	w.call(V, "GET", "/lists/{id}", []any{list.Data.ID}, "", "", 200, nil)
	w.call(V, "GET", "/lists/{id}", []any{999999}, "", "", 404, nil)
	w.call(M, "PUT", "/lists/{id}", []any{list.Data.ID}, "", `{"name":"News","description":"Monthly","optin":"single"}`, 200, nil)
	var subs []int64
	for i := range 4 {
		var s idData
		w.call(M, "POST", "/subscribers", nil, "", fmt.Sprintf(`{"email":"reader%d@example.org","name":"Reader %d","lists":[%d],"attributes":{"city":"Lyon"}}`, i, i, list.Data.ID), 201, &s)
		subs = append(subs, s.Data.ID)
	}
	w.call(M, "POST", "/subscribers", nil, "", `{"email":"reader0@example.org"}`, 409, nil)
	w.call(M, "POST", "/subscribers", nil, "", `{"email":"not an address"}`, 422, nil)
	w.call(M, "POST", "/subscribers", nil, "", `{"email":`, 400, nil)
	var sp struct {
		NextBefore int64 `json:"next_before"`
	}
	w.call(V, "GET", "/subscribers", nil, "limit=2", "", 200, &sp)
	if sp.NextBefore == 0 {
		t.Error("two of four subscribers and no next page")
	}
	w.call(V, "GET", "/subscribers", nil, fmt.Sprintf("limit=2&before=%d", sp.NextBefore), "", 200, nil)
	w.call(V, "GET", "/subscribers", nil, "limit=0", "", 400, nil)
	w.call(V, "GET", "/subscribers/{id}", []any{subs[0]}, "", "", 200, nil)
	w.call(M, "PUT", "/subscribers/{id}", []any{subs[0]}, "", `{"email":"reader0@example.org","name":"Reader Zero"}`, 200, nil)
	var other idData
	w.call(M, "POST", "/lists", nil, "", `{"name":"Other","optin":"single"}`, 201, &other)
	w.call(M, "PUT", "/subscribers/{id}/lists/{list}", []any{subs[3], other.Data.ID}, "", `{"status":"confirmed"}`, 200, nil)
	w.call(M, "DELETE", "/subscribers/{id}/lists/{list}", []any{subs[3], other.Data.ID}, "", "", 200, nil)

	var tmpl, scratch idData
	w.call(M, "POST", "/templates", nil, "", `{"name":"Monthly","subject":"Hello {{.Subscriber.Name}}",
		"html":"<html><body><p>Hi {{.Subscriber.Name}}</p><a href=\"https://example.com/x\">Read</a><p>{{.Org.PostalAddress}} <a href=\"{{.UnsubscribeURL}}\">Unsubscribe</a></p></body></html>"}`, 201, &tmpl)
	w.call(M, "POST", "/templates", nil, "", `{"name":"broken","subject":"Hi","html":"{{ .Subscriber.Nmae }}"}`, 422, nil)
	w.call(M, "POST", "/templates", nil, "", `{"kind":"transactional","name":"reset","subject":"Reset","text":"Code {{.Data.code}}"}`, 201, &scratch)
	w.call(V, "GET", "/templates", nil, "kind=campaign", "", 200, nil)
	w.call(V, "GET", "/templates/{id}", []any{tmpl.Data.ID}, "", "", 200, nil)
	w.call(M, "PUT", "/templates/{id}", []any{scratch.Data.ID}, "", `{"kind":"transactional","name":"reset","subject":"Reset","text":"Your code: {{.Data.code}}"}`, 200, nil)

	// A campaign sent to the capture outbox.
	var cp, draft idData
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"November","template_id":%d,"from_email":"news@acme.test","from_name":"Acme","lists":[%d]}`, tmpl.Data.ID, list.Data.ID), 201, &cp)
	w.call(M, "POST", "/campaigns", nil, "", `{"name":""}`, 422, nil)
	w.call(M, "POST", "/campaigns/{id}/{action}", []any{cp.Data.ID, "start"}, "", "", 200, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c struct{ Data struct{ Status string } }
		w.call(V, "GET", "/campaigns/{id}", []any{cp.Data.ID}, "", "", 200, &c)
		if c.Data.Status == models.CampaignFinished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign not finished: %s", c.Data.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.call(M, "POST", "/campaigns/{id}/{action}", []any{cp.Data.ID, "pause"}, "", "", 409, nil)
	w.call(V, "GET", "/campaigns", nil, "", "", 200, nil)
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"Draft","template_id":%d,"from_email":"news@acme.test","lists":[%d],
		"preheader":"What is new","local_send_at":"09:00","tz_attribute":"tz","tz_default":"Europe/Paris"}`, tmpl.Data.ID, list.Data.ID), 201, &draft)
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"Late","template_id":%d,"from_email":"news@acme.test","lists":[%d],"local_send_at":"25:99"}`, tmpl.Data.ID, list.Data.ID), 422, nil)
	// A partial update: the content changed, the rest kept.
	type campaignJS struct {
		Data struct {
			Name, Subject, Preheader, HTML, Text, Format string
			TextDerived                                  *bool  `json:"text_derived"`
			LocalSendAt                                  string `json:"local_send_at"`
			TZDefault                                    string `json:"tz_default"`
		}
	}
	var edited campaignJS
	w.call(M, "PUT", "/campaigns/{id}", []any{draft.Data.ID}, "", `{"subject":"December news","format":"markdown",
		"html":"# Hello {{.Subscriber.Name}}\n\nOur December news.","text":"Hello {{.Subscriber.Name}}"}`, 200, &edited)
	if e := edited.Data; e.Name != "Draft" || e.Subject != "December news" || e.Preheader != "What is new" || e.Format != models.FormatMarkdown ||
		e.TextDerived == nil || *e.TextDerived || e.LocalSendAt != "09:00" || e.TZDefault != "Europe/Paris" {
		t.Errorf("campaign after PUT = %+v", e)
	}
	w.call(M, "PUT", "/campaigns/{id}", []any{draft.Data.ID}, "", `{"text":""}`, 200, &edited)
	if e := edited.Data; e.TextDerived == nil || !*e.TextDerived || e.Format != models.FormatMarkdown {
		t.Errorf("campaign with its text part emptied = %+v, want it derived", e)
	}
	w.call(M, "PUT", "/campaigns/{id}", []any{draft.Data.ID}, "", `{"format":"rtf"}`, 422, nil)
	w.call(M, "PUT", "/campaigns/{id}", []any{draft.Data.ID}, "", `{"template_id":1}`, 400, nil)
	w.call(M, "PUT", "/campaigns/{id}", []any{cp.Data.ID}, "", `{"subject":"Too late"}`, 409, nil)
	w.call(M, "PUT", "/campaigns/{id}", []any{999999}, "", `{"subject":"x"}`, 404, nil)
	w.call(V, "PUT", "/campaigns/{id}", []any{draft.Data.ID}, "", `{"subject":"x"}`, 403, nil)
	segs := walkSegments(t, w, V, M, list.Data.ID, other.Data.ID, tmpl.Data.ID, draft.Data.ID)
	walkABTest(t, w, V, M, list.Data.ID, tmpl.Data.ID)
	walkAutomations(t, w, V, M, list.Data.ID, subs[0], cp.Data.ID)
	w.call(A, "POST", "/campaigns/{id}/dns-override", []any{draft.Data.ID}, "", `{"reason":"DNS moves tonight"}`, 200, nil)
	w.call(M, "POST", "/campaigns/{id}/dns-override", []any{draft.Data.ID}, "", `{"reason":"x"}`, 403, nil)
	w.call(M, "POST", "/tx", nil, "", `{"template":"reset","to":"solo@example.net","from":"no-reply@acme.test","data":{"code":"42"}}`, 202, nil)
	w.call(M, "POST", "/tx", nil, "", `{"template":"nope","to":"solo@example.net","from":"no-reply@acme.test"}`, 422, nil)
	w.call(V, "GET", "/outbox", nil, fmt.Sprintf("campaign=%d", cp.Data.ID), "", 200, nil)

	// Readers open and click through the captured messages; one address
	// bounces, one complains.
	msgs, err := app.store.Outbox(ctx, models.OutboxQuery{CampaignID: cp.Data.ID})
	if err != nil || len(msgs) != 4 {
		t.Fatalf("outbox: %d messages, %v", len(msgs), err)
	}
	link := regexp.MustCompile(`http://herald\.test(/t/[oc]/[A-Za-z0-9_\-.=]+)`)
	hits := 0
	for _, m := range msgs[:3] {
		full, err := app.store.OutboxMessage(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range link.FindAllStringSubmatch(full.HTML, -1) {
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(app.http.URL + l[1])
			if err != nil || resp.StatusCode >= 400 {
				t.Fatalf("GET %s: %v %v", l[1], resp, err)
			}
			resp.Body.Close()
			hits++
		}
	}
	if hits < 6 {
		t.Fatalf("%d tracking links followed, want an open and a click for three readers", hits)
	}
	if _, err := app.store.RecordBounce(ctx, models.BounceNotice{DeliveryID: msgs[3].DeliveryID, Kind: models.BounceHard,
		Category: "bad-mailbox", Status: "5.1.1", Diagnostic: "550 5.1.1 no such user", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.store.RecordComplaint(ctx, models.BounceNotice{DeliveryID: msgs[2].DeliveryID, Kind: models.BounceComplaint, Category: "abuse"}); err != nil {
		t.Fatal(err)
	}

	// The event feed: everything once, in pages or not.
	type feed struct {
		Data []struct {
			ID, Type, URL string
			BounceKind    string `json:"bounce_kind"`
		}
		Cursor string
		More   bool
	}
	var all feed
	deadline = time.Now().Add(15 * time.Second)
	for {
		w.call(V, "GET", "/events", nil, "", "", 200, &all)
		if len(all.Data) >= 8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	kinds := map[string]int{}
	for _, e := range all.Data {
		kinds[e.Type]++
		if e.Type == "click" && e.URL != "https://example.com/x" {
			t.Errorf("click on %q, want the template's link", e.URL)
		}
	}
	if kinds["open"] < 3 || kinds["click"] < 3 || kinds["bounce"] != 1 || kinds["complaint"] != 1 {
		t.Fatalf("feed kinds = %v, want 3 opens, 3 clicks, a bounce and a complaint", kinds)
	}
	var paged []string
	cursor := ""
	for range 50 {
		var f feed
		w.call(V, "GET", "/events", nil, "limit=3&after="+url.QueryEscape(cursor), "", 200, &f)
		for _, e := range f.Data {
			paged = append(paged, e.ID)
		}
		if len(f.Data) == 0 {
			if f.Cursor != cursor {
				t.Errorf("an empty page moved the cursor from %q to %q", cursor, f.Cursor)
			}
			break
		}
		cursor = f.Cursor
	}
	var whole []string
	for _, e := range all.Data {
		whole = append(whole, e.ID)
	}
	if strings.Join(paged, ",") != strings.Join(whole, ",") {
		t.Errorf("paged feed %v, whole feed %v", paged, whole)
	}
	var only feed
	w.call(V, "GET", "/events", nil, "type=bounce,complaint&campaign="+itoa(cp.Data.ID), "", 200, &only)
	if len(only.Data) != 2 {
		t.Errorf("bounces and complaints: %+v", only.Data)
	}
	w.call(V, "GET", "/events", nil, "after=not-a-cursor", "", 400, nil)
	w.call(V, "GET", "/events", nil, "type=delivered", "", 400, nil)

	var bounces struct {
		Data []struct{ Email, Kind string }
	}
	w.call(V, "GET", "/bounces", nil, fmt.Sprintf("campaign=%d&type=hard", cp.Data.ID), "", 200, &bounces)
	if len(bounces.Data) != 1 || bounces.Data[0].Email != msgs[3].RcptTo {
		t.Errorf("hard bounces = %+v, want %s", bounces.Data, msgs[3].RcptTo)
	}
	w.call(V, "GET", "/bounces", nil, "type=bogus", "", 400, nil)

	var report struct {
		Data struct {
			Rates struct {
				Sent        int64
				HardBounces int64 `json:"hard_bounces"`
				Complaints  int64
				Opens       int64
			}
			Providers []struct{ Provider string }
			Links     []struct{ URL string }
			Bounces   []struct{ Kind string }
		}
	}
	w.call(V, "GET", "/campaigns/{id}/report", []any{cp.Data.ID}, "", "", 200, &report)
	// Four delivered, one of them bounced later.
	if r := report.Data; r.Rates.Sent != 3 || r.Rates.HardBounces != 1 || r.Rates.Complaints != 1 || r.Rates.Opens != 3 ||
		len(r.Providers) == 0 || len(r.Links) != 1 || len(r.Bounces) != 2 {
		t.Errorf("report = %+v", r)
	}
	w.call(V, "GET", "/campaigns/{id}/report", []any{999999}, "", "", 404, nil)

	// Suppressions.
	var sup idData
	w.call(M, "POST", "/suppressions", nil, "", `{"value":"spam.example","kind":"domain","note":"ours"}`, 201, &sup)
	w.call(M, "POST", "/suppressions", nil, "", `{"value":"nobody"}`, 422, nil)
	var sups struct{ Data []struct{ Value string } }
	w.call(V, "GET", "/suppressions", nil, "q=@spam", "", 200, &sups)
	if len(sups.Data) != 1 || sups.Data[0].Value != "@spam.example" {
		t.Errorf("suppressions = %+v", sups.Data)
	}
	w.call(M, "DELETE", "/suppressions/{id}", []any{sup.Data.ID}, "", "", 422, nil)
	w.call(M, "DELETE", "/suppressions/{id}", []any{sup.Data.ID}, "reason=added+by+mistake", "", 204, nil)

	// A sending domain: its records published, then checked.
	var dom struct {
		Data struct {
			ID      int64
			Records []models.DNSRecord
			Check   []struct{ Purpose, State string }
		}
	}
	w.call(A, "POST", "/sending-domains", nil, "", `{"domain":"acme.test"}`, 201, &dom)
	w.call(A, "POST", "/sending-domains", nil, "", `{"domain":"acme.test"}`, 422, nil)
	w.call(M, "POST", "/sending-domains", nil, "", `{"domain":"other.test"}`, 403, nil)
	w.call(V, "GET", "/sending-domains", nil, "", "", 200, nil)
	w.call(V, "GET", "/sending-domains/{id}", []any{dom.Data.ID}, "", "", 200, nil)
	w.call(V, "GET", "/sending-domains/{id}/reports", []any{dom.Data.ID}, "days=7", "", 200, nil)
	for _, r := range dom.Data.Records {
		if r.Purpose == "dkim" {
			ns.Records(t, r)
		}
	}
	w.call(A, "POST", "/sending-domains/{id}/check", []any{dom.Data.ID}, "", "", 200, &dom)
	states := map[string]string{}
	for _, c := range dom.Data.Check {
		states[c.Purpose] = c.State
	}
	if states["dkim"] != models.RecordOK || states["dmarc"] == models.RecordOK {
		t.Errorf("check states = %v, want the published DKIM record ok and the missing DMARC not", states)
	}

	// Domain rules.
	var rules struct {
		Data []struct {
			ID        int64
			IsDefault bool `json:"is_default"`
		}
	}
	w.call(V, "GET", "/domain-rules", nil, "", "", 200, &rules)
	var rule idData
	w.call(A, "POST", "/domain-rules", nil, "", `{"name":"fastmail","domains":"fastmail.com","per_second":2,"per_minute":60,"per_hour":1000,"max_connections":2,"max_per_connection":50,"backoff_min_seconds":60,"backoff_max_seconds":600,"position":50}`, 201, &rule)
	w.call(A, "POST", "/domain-rules", nil, "", `{"name":"fastmail","domains":"fastmail.fm","backoff_min_seconds":60,"backoff_max_seconds":600,"position":51}`, 422, nil)
	w.call(V, "GET", "/domain-rules/{id}", []any{rule.Data.ID}, "", "", 200, nil)
	w.call(A, "PUT", "/domain-rules/{id}", []any{rule.Data.ID}, "", `{"name":"fastmail","domains":"fastmail.com fastmail.fm","per_second":1,"backoff_min_seconds":60,"backoff_max_seconds":600,"position":50,"require_tls":true}`, 200, nil)
	for _, r := range rules.Data {
		if r.IsDefault {
			w.call(A, "DELETE", "/domain-rules/{id}", []any{r.ID}, "", "", 409, nil)
		}
	}
	w.call(A, "DELETE", "/domain-rules/{id}", []any{rule.Data.ID}, "", "", 204, nil)

	// The consent ledger.
	var ledger struct{ Data []struct{ Email string } }
	w.call(V, "GET", "/consents", nil, "", "", 200, &ledger)
	if len(ledger.Data) < 4 {
		t.Errorf("ledger rows = %d", len(ledger.Data))
	}
	w.call(M, "GET", "/consents", nil, "", "", 403, nil) // until an admin allows marketers
	app.store.SetSetting(ctx, models.SettingComplianceMarketers, models.ComplianceMarketersRead)
	w.call(M, "GET", "/consents", nil, "limit=1", "", 200, nil)
	app.store.SetSetting(ctx, models.SettingComplianceMarketers, "")
	w.call(M, "GET", "/data-requests", nil, "", "", 403, nil)
	w.call(V, "GET", "/consents", nil, "from=yesterday", "", 422, nil)
	w.call(V, "GET", "/subscribers/{id}/consents", []any{subs[1]}, "limit=10", "", 200, &ledger)
	if len(ledger.Data) == 0 || ledger.Data[0].Email != "reader1@example.org" {
		t.Errorf("subscriber's ledger = %+v", ledger.Data)
	}
	w.call(V, "GET", "/subscribers/{id}/consents", []any{999999}, "", "", 404, nil)

	// Data-subject requests: an access request answered by export, an
	// erasure by erasure, a rectification rejected.
	var access, erasure, rect idData
	w.call(A, "POST", "/data-requests", nil, "", `{"kind":"access","email":"reader1@example.org","note":"by email"}`, 201, &access)
	w.call(A, "POST", "/data-requests", nil, "", `{"kind":"gossip","email":"reader1@example.org"}`, 422, nil)
	w.call(M, "POST", "/data-requests", nil, "", `{"kind":"access","email":"reader1@example.org"}`, 403, nil)
	w.call(V, "GET", "/data-requests", nil, "status=open", "", 200, nil)
	w.call(V, "GET", "/data-requests/{id}", []any{access.Data.ID}, "", "", 200, nil)
	var export struct {
		Data struct{ Profile struct{ Email string } }
	}
	w.call(A, "POST", "/data-requests/{id}/export", []any{access.Data.ID}, "", "", 200, &export)
	if export.Data.Profile.Email != "reader1@example.org" {
		t.Errorf("export profile = %+v", export.Data.Profile)
	}
	w.call(A, "POST", "/data-requests/{id}/export", []any{access.Data.ID}, "", "", 409, nil)
	w.call(A, "POST", "/data-requests", nil, "", `{"kind":"erasure","email":"reader2@example.org","received_at":"2026-01-02"}`, 201, &erasure)
	w.call(A, "POST", "/data-requests/{id}/export", []any{erasure.Data.ID}, "", "", 409, nil)
	var erased struct {
		Data struct{ Status, Email string }
	}
	w.call(A, "POST", "/data-requests/{id}/erase", []any{erasure.Data.ID}, "", "", 200, &erased)
	if erased.Data.Status != models.DSRDone || erased.Data.Email != "" {
		t.Errorf("erasure request after = %+v, want done with the address blanked", erased.Data)
	}
	w.call(V, "GET", "/subscribers/{id}", []any{subs[2]}, "", "", 404, nil)
	w.call(A, "POST", "/data-requests", nil, "", `{"kind":"rectification","email":"nobody@example.org"}`, 201, &rect)
	w.call(A, "POST", "/data-requests/{id}/erase", []any{rect.Data.ID}, "", "", 409, nil)
	w.call(A, "POST", "/data-requests/{id}/close", []any{rect.Data.ID}, "", `{"status":"rejected"}`, 422, nil)
	w.call(A, "POST", "/data-requests/{id}/close", []any{rect.Data.ID}, "", `{"status":"rejected","outcome":"no data held"}`, 200, nil)
	w.call(A, "POST", "/data-requests/{id}/close", []any{rect.Data.ID}, "", `{"status":"done","outcome":"again"}`, 409, nil)

	walkWebhooks(t, w, A, M)

	// Deletions last: a segment a draft uses is kept until it is taken out.
	// (segs[1] is the draft's exclusion only.)
	w.call(M, "DELETE", "/segments/{id}", []any{segs[1]}, "", "", 409, nil)
	w.call(M, "PUT", "/campaigns/{id}", []any{draft.Data.ID}, "", `{"exclude_segments":[]}`, 200, nil)
	w.call(M, "DELETE", "/segments/{id}", []any{segs[1]}, "", "", 204, nil)
	w.call(M, "DELETE", "/segments/{id}", []any{segs[1]}, "", "", 404, nil)
	w.call(V, "GET", "/segments/{id}", []any{segs[1]}, "", "", 404, nil)
	w.call(M, "DELETE", "/templates/{id}", []any{scratch.Data.ID}, "", "", 204, nil)
	w.call(M, "DELETE", "/subscribers/{id}", []any{subs[3]}, "", "", 204, nil)
	w.call(M, "DELETE", "/lists/{id}", []any{other.Data.ID}, "", "", 204, nil)

	var missing []string
	for op := range docOperations(w.doc) {
		if w.covered[op] == 0 {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations the walk never called: %v", missing)
	}
	t.Logf("%d operations walked in %d calls", len(w.covered), func() (n int) {
		for _, c := range w.covered {
			n += c
		}
		return
	}())
}

// walkWebhooks registers a webhook for a local receiver (refused until an
// admin allows private targets), has a test event posted to it by the
// real dispatcher, failed once and then delivered, reads the delivery
// log, changes the webhook and deletes it.
func walkWebhooks(t *testing.T, w *apiWalker, A, M string) {
	ctx := context.Background()
	var mu sync.Mutex
	var secret string
	var posts, badSig int
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		posts++
		if outhook.Verify(secret, r.Header.Get(outhook.SignatureHeader), body, time.Now(), time.Hour) != nil {
			badSig++
		}
		if r.Header.Get("Herald-Attempt") == "1" {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	target := fmt.Sprintf(`{"url":%q,"events":["sent","clicked"]}`, recv.URL+"/hook")

	w.call(A, "POST", "/webhooks", nil, "", target, 422, nil) // a loopback target
	w.call(M, "GET", "/webhooks", nil, "", "", 403, nil)
	w.app.store.SetSetting(ctx, models.SettingWebhookPrivate, "on")
	defer w.app.store.SetSetting(ctx, models.SettingWebhookPrivate, "")
	var hook struct {
		Data struct {
			ID     int64
			Secret string
			Events []string
		}
	}
	w.call(A, "POST", "/webhooks", nil, "", target, 201, &hook)
	if !strings.HasPrefix(hook.Data.Secret, "whsec_") || strings.Join(hook.Data.Events, ",") != "sent,clicked" {
		t.Fatalf("created webhook = %+v", hook.Data)
	}
	mu.Lock()
	secret = hook.Data.Secret
	mu.Unlock()
	w.call(A, "POST", "/webhooks", nil, "", `{"url":"https://example.com/hook","events":["sent","exploded"]}`, 422, nil)
	w.call(A, "POST", "/webhooks", nil, "", `{"url":"https://example.com/hook"}`, 422, nil)
	w.call(A, "POST", "/webhooks", nil, "", `{"url":"https://example.com/hook","events":"sent"}`, 400, nil)
	listed := w.call(A, "GET", "/webhooks", nil, "", "", 200, nil)
	if !strings.Contains(listed.Body, recv.URL) || strings.Contains(listed.Body, hook.Data.Secret) {
		t.Errorf("webhooks = %s; want the webhook without its secret", listed.Body)
	}
	w.call(A, "GET", "/webhooks/{id}", []any{hook.Data.ID}, "", "", 200, nil)
	w.call(A, "GET", "/webhooks/{id}", []any{999999}, "", "", 404, nil)

	// The dispatcher posts a test event (and whatever the feed finds):
	// the first attempt answered 500 and retried, the second delivered.
	h, err := w.app.store.Webhook(ctx, hook.Data.ID)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	d := &outhook.Dispatcher{Store: w.app.store, Log: slog.New(slog.DiscardHandler), Owner: "walk",
		Backoff: []time.Duration{time.Minute}, Now: func() time.Time { return clock }}
	if _, err := w.app.store.EnqueueWebhookEvents(ctx, []models.Webhook{*h}, []models.HookEvent{models.TestHookEvent(clock)}, clock); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Event, State, Error string
		Attempt             int
		StatusCode          int        `json:"status_code"`
		Next                *time.Time `json:"next_attempt_at"`
	}
	testEntries := func() []entry {
		var log struct{ Data []entry }
		w.call(A, "GET", "/webhooks/{id}/deliveries", []any{hook.Data.ID}, "", "", 200, &log)
		var out []entry
		for _, e := range log.Data {
			if e.Event == models.HookTest {
				out = append(out, e)
			}
		}
		return out
	}
	if got := testEntries(); len(got) != 1 || got[0].Attempt != 0 || got[0].State != models.HookPending || got[0].Next == nil {
		t.Errorf("log before the dispatcher ran = %+v, want the test event waiting", got)
	}
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testEntries(); len(got) != 1 || got[0].Attempt != 1 || got[0].StatusCode != 500 || got[0].State != models.HookPending ||
		got[0].Error == "" || got[0].Next == nil {
		t.Errorf("log after the failed attempt = %+v, want a 500 to be retried", got)
	}
	clock = clock.Add(2 * time.Minute)
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testEntries(); len(got) != 2 || got[0].Attempt != 2 || got[0].StatusCode != 204 || got[0].State != models.HookDone ||
		got[0].Next != nil || got[1].Attempt != 1 {
		t.Errorf("log after the retry = %+v, want the second attempt delivered", got)
	}
	mu.Lock()
	if posts < 2 || badSig > 0 {
		t.Errorf("the receiver got %d posts, %d with a bad signature", posts, badSig)
	}
	mu.Unlock()
	w.call(A, "GET", "/webhooks/{id}/deliveries", []any{999999}, "", "", 404, nil)

	var changed struct {
		Data struct {
			URL     string
			Events  []string
			Enabled bool
		}
	}
	w.call(A, "PUT", "/webhooks/{id}", []any{hook.Data.ID}, "", fmt.Sprintf(`{"url":%q,"events":["opened","bounced"],"enabled":false}`, recv.URL+"/v2"), 200, &changed)
	if c := changed.Data; c.Enabled || c.URL != recv.URL+"/v2" || strings.Join(c.Events, ",") != "bounced,opened" {
		t.Errorf("webhook after PUT = %+v", c)
	}
	w.call(A, "PUT", "/webhooks/{id}", []any{hook.Data.ID}, "", `{"url":"gopher://example.com/","events":["sent"]}`, 422, nil)
	w.call(M, "PUT", "/webhooks/{id}", []any{hook.Data.ID}, "", target, 403, nil)
	w.call(A, "DELETE", "/webhooks/{id}", []any{hook.Data.ID}, "", "", 204, nil)
	w.call(A, "DELETE", "/webhooks/{id}", []any{hook.Data.ID}, "", "", 404, nil)
	w.call(A, "GET", "/webhooks/{id}", []any{hook.Data.ID}, "", "", 404, nil)
}

// walkSegments saves segments (an attribute and an engagement condition),
// counts and previews them, refuses wrong conditions, and gives the draft
// an audience of lists, segments and exclusions through the partial PUT.
// It answers the segments the draft still uses.
func walkSegments(t *testing.T, w *apiWalker, V, M string, list, other, tmpl, draft int64) []int64 {
	type segJS struct {
		Data struct {
			ID         int64
			Name       string
			Conditions models.Conditions
		}
	}
	var lyon, excl segJS
	w.call(M, "POST", "/segments", nil, "", `{"name":"Lyon, never opened","conditions":{"match":"all","groups":[
		{"match":"any","conditions":[{"field":"attribute","key":"city","op":"equals","value":"Lyon"}]},
		{"conditions":[{"field":"opened","op":"never"}]}]}}`, 201, &lyon)
	if lyon.Data.Name != "Lyon, never opened" || lyon.Data.Conditions.Count() != 2 {
		t.Errorf("created segment = %+v", lyon.Data)
	}
	w.call(M, "POST", "/segments", nil, "", `{"name":"Bad","conditions":{"groups":[{"conditions":[{"field":"attribute","key":"age","op":"greater_than","value":"ten"}]}]}}`, 422, nil)
	w.call(M, "POST", "/segments", nil, "", `{"name":"Bad","conditions":{"groups":[{"conditions":[{"field":"mood","op":"equals","value":"x"}]}]}}`, 422, nil)
	w.call(M, "POST", "/segments", nil, "", `{"name":"Bad","conditions":`, 400, nil)
	w.call(V, "POST", "/segments", nil, "", `{"name":"x","conditions":{"groups":[]}}`, 403, nil)
	w.call(M, "POST", "/segments", nil, "", `{"name":"Reader 1","conditions":{"groups":[{"conditions":[{"field":"email_domain","op":"equals","value":"example.org"},
		{"field":"list","op":"in","list_id":`+itoa(list)+`}]}]}}`, 201, &excl)
	w.call(V, "GET", "/segments", nil, "", "", 200, nil)
	w.call(V, "GET", "/segments/{id}", []any{lyon.Data.ID}, "", "", 200, nil)
	w.call(V, "GET", "/segments/{id}", []any{999999}, "", "", 404, nil)
	var n struct{ Data struct{ Count int64 } }
	w.call(V, "GET", "/segments/{id}/count", []any{lyon.Data.ID}, "", "", 200, &n)
	// Reader 0's PUT above replaced their attributes: three in Lyon.
	if n.Data.Count != 3 {
		t.Errorf("segment count = %d, want the 3 readers still in Lyon", n.Data.Count)
	}
	w.call(V, "GET", "/segments/{id}/count", []any{999999}, "", "", 404, nil)
	var pv struct{ Data []struct{ Email string } }
	w.call(V, "GET", "/segments/{id}/preview", []any{lyon.Data.ID}, "limit=2", "", 200, &pv)
	if len(pv.Data) != 2 {
		t.Errorf("preview = %+v, want 2 people", pv.Data)
	}
	w.call(V, "GET", "/segments/{id}/preview", []any{lyon.Data.ID}, "limit=0", "", 422, nil)
	w.call(V, "GET", "/segments/{id}/preview", []any{999999}, "", "", 404, nil)
	// Narrowed to one reader, then counted again: the count follows.
	w.call(M, "PUT", "/segments/{id}", []any{excl.Data.ID}, "", `{"name":"Reader 1","conditions":{"groups":[{"conditions":[{"field":"attribute","key":"city","op":"equals","value":"Lyon"},
		{"field":"attribute","key":"missing","op":"not_set"}]},{"conditions":[{"field":"signup_date","op":"in_last_days","days":1}]}],"match":"all"}}`, 200, nil)
	w.call(M, "PUT", "/segments/{id}", []any{excl.Data.ID}, "", `{"name":"","conditions":{"groups":[]}}`, 422, nil)
	w.call(M, "PUT", "/segments/{id}", []any{999999}, "", `{"name":"x","conditions":{"groups":[{"conditions":[{"field":"opened","op":"ever"}]}]}}`, 404, nil)
	var scratch segJS
	w.call(M, "POST", "/segments", nil, "", `{"name":"Scratch","conditions":{"groups":[{"conditions":[{"field":"received","op":"at_least","count":8}]}]}}`, 201, &scratch)
	w.call(M, "DELETE", "/segments/{id}", []any{scratch.Data.ID}, "", "", 204, nil)

	// A campaign's audience: lists and/or segments minus exclusions, on
	// create and through the partial PUT, the other fields kept.
	type audJS struct {
		Data struct {
			Subject         string
			Lists           []int64
			Segments        []int64
			ExcludeLists    []int64 `json:"exclude_lists"`
			ExcludeSegments []int64 `json:"exclude_segments"`
		}
	}
	var seg audJS
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"Segmented","template_id":%d,"from_email":"news@acme.test","segments":[%d],"exclude_lists":[%d]}`,
		tmpl, lyon.Data.ID, other), 201, &seg)
	if d := seg.Data; len(d.Lists) != 0 || fmt.Sprint(d.Segments) != fmt.Sprint([]int64{lyon.Data.ID}) || fmt.Sprint(d.ExcludeLists) != fmt.Sprint([]int64{other}) {
		t.Errorf("campaign to a segment = %+v", d)
	}
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"Nobody","template_id":%d,"from_email":"news@acme.test","exclude_lists":[%d]}`, tmpl, list), 422, nil)
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"Ghost","template_id":%d,"from_email":"news@acme.test","segments":[999999]}`, tmpl), 422, nil)
	var aud audJS
	w.call(M, "PUT", "/campaigns/{id}", []any{draft}, "", fmt.Sprintf(`{"segments":[%d],"exclude_segments":[%d]}`, lyon.Data.ID, excl.Data.ID), 200, &aud)
	if d := aud.Data; d.Subject != "December news" || fmt.Sprint(d.Lists) != fmt.Sprint([]int64{list}) ||
		fmt.Sprint(d.Segments) != fmt.Sprint([]int64{lyon.Data.ID}) || fmt.Sprint(d.ExcludeSegments) != fmt.Sprint([]int64{excl.Data.ID}) {
		t.Errorf("draft after the audience PUT = %+v", d)
	}
	w.call(M, "PUT", "/campaigns/{id}", []any{draft}, "", `{"exclude_lists":[999999]}`, 422, nil)
	return []int64{lyon.Data.ID, excl.Data.ID}
}

// walkABTest sends an A/B tested campaign: the test share goes out, the
// marketer picks variant B for the rest, once.
func walkABTest(t *testing.T, w *apiWalker, V, M string, list, tmpl int64) {
	type abJS struct {
		Data struct {
			ID     int64
			Status string
			ABTest *struct {
				TestSentAt *time.Time `json:"test_sent_at"`
				Winner     *int
				Held       int64
				Variants   []struct{ Idx int }
			} `json:"ab_test"`
		}
	}
	var ab abJS
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"Subject test","template_id":%d,"from_email":"news@acme.test","lists":[%d],
		"ab_test":{"variants":[{},{"subject":"B"}],"share":50,"metric":"opens","wait_seconds":3600,"manual":true}}`, tmpl, list), 201, &ab)
	if ab.Data.ABTest == nil || len(ab.Data.ABTest.Variants) != 2 {
		t.Fatalf("A/B campaign = %+v", ab.Data)
	}
	w.call(M, "POST", "/campaigns", nil, "", fmt.Sprintf(`{"name":"One variant","template_id":%d,"from_email":"news@acme.test","lists":[%d],
		"ab_test":{"variants":[{}],"share":50,"metric":"opens","wait_seconds":3600}}`, tmpl, list), 422, nil)
	w.call(M, "POST", "/campaigns/{id}/winner", []any{ab.Data.ID}, "", `{"variant":2}`, 409, nil) // a draft: no test sent yet
	w.call(M, "POST", "/campaigns/{id}/{action}", []any{ab.Data.ID, "start"}, "", "", 200, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c abJS
		w.call(V, "GET", "/campaigns/{id}", []any{ab.Data.ID}, "", "", 200, &c)
		if c.Data.ABTest != nil && c.Data.ABTest.TestSentAt != nil {
			if c.Data.ABTest.Held != 2 {
				t.Errorf("held back = %d, want half of the 4 readers", c.Data.ABTest.Held)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the A/B test share was not sent: %+v", c.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.call(M, "POST", "/campaigns/{id}/winner", []any{ab.Data.ID}, "", `{"variant":`, 400, nil)
	w.call(V, "POST", "/campaigns/{id}/winner", []any{ab.Data.ID}, "", `{"variant":2}`, 403, nil)
	w.call(M, "POST", "/campaigns/{id}/winner", []any{999999}, "", `{"variant":2}`, 404, nil)
	var won abJS
	w.call(M, "POST", "/campaigns/{id}/winner", []any{ab.Data.ID}, "", `{"variant":2}`, 200, &won)
	if won.Data.ABTest == nil || won.Data.ABTest.Winner == nil || *won.Data.ABTest.Winner != 2 {
		t.Errorf("after the pick = %+v, want variant 2 the winner", won.Data.ABTest)
	}
	w.call(M, "POST", "/campaigns/{id}/winner", []any{ab.Data.ID}, "", `{"variant":1}`, 409, nil)
	for {
		var c abJS
		w.call(V, "GET", "/campaigns/{id}", []any{ab.Data.ID}, "", "", 200, &c)
		if c.Data.Status == models.CampaignFinished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A/B campaign not finished: %s", c.Data.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// walkAutomations creates a welcome series, activates it, enters a
// subscriber by id and by address, edits its steps into a new version,
// reads the figures and deletes it.
func walkAutomations(t *testing.T, w *apiWalker, V, M string, list, sub, camp int64) {
	t.Helper()
	body := fmt.Sprintf(`{"name":"Welcome","trigger":"api","list_id":%d,"from_email":"hello@example.com","tz_attribute":"tz",
		"exit_attribute":"bought","exit_value":"yes","steps":[
		{"kind":"send","subject":"Welcome","html":"<p>Hi</p>"},
		{"kind":"wait","wait_days":2},
		{"kind":"branch","cond":"clicked","cond_step":1,"then_step":-1},
		{"kind":"send","subject":"Reminder","html":"<p>Again</p>"}]}`, list)
	var a struct {
		Data struct {
			ID      int64
			Status  string
			Version int
			Steps   []struct {
				Kind        string
				CampaignID  *int64 `json:"campaign_id"`
				WaitWeekday int    `json:"wait_weekday"`
			}
		}
	}
	w.call(M, "POST", "/automations", nil, "", body, 201, &a)
	if a.Data.Status != "draft" || len(a.Data.Steps) != 4 || a.Data.Steps[0].CampaignID == nil || a.Data.Steps[1].WaitWeekday != -1 {
		t.Errorf("created automation: %+v, want a draft of 4 steps, the send step with its campaign, the wait on any weekday", a.Data)
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"api","from_email":"hello@example.com","steps":[{"kind":"teleport"}]}`, 422, nil)
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"list_confirmed","from_email":"hello@example.com","steps":[{"kind":"exit"}]}`, 422, nil)
	w.call(M, "POST", "/automations", nil, "", `{"name":`, 400, nil)
	w.call(V, "POST", "/automations", nil, "", body, 403, nil)
	w.call(V, "GET", "/automations", nil, "", "", 200, nil)
	w.call(V, "GET", "/automations/{id}", []any{a.Data.ID}, "", "", 200, nil)
	w.call(V, "GET", "/automations/{id}", []any{999999}, "", "", 404, nil)
	w.call(M, "POST", "/automations/{id}/enter", []any{a.Data.ID}, "", fmt.Sprintf(`{"subscriber_ids":[%d]}`, sub), 422, nil)
	w.call(M, "PUT", "/automations/{id}", []any{a.Data.ID}, "", fmt.Sprintf(`{"name":"Welcome","trigger":"api","list_id":%d,"from_email":"hello@example.com","status":"active"}`, list), 200, &a)
	if a.Data.Status != "active" || len(a.Data.Steps) != 4 {
		t.Errorf("activated automation: %+v, want active with its 4 steps kept", a.Data)
	}
	var entered struct {
		Data struct {
			Entered int64
			Unknown []string
		}
	}
	w.call(M, "POST", "/automations/{id}/enter", []any{a.Data.ID}, "", fmt.Sprintf(`{"subscriber_ids":[%d],"emails":["nobody@example.net"]}`, sub), 200, &entered)
	if entered.Data.Entered != 1 || len(entered.Data.Unknown) != 1 {
		t.Errorf("enter: %+v, want 1 entered and the unknown address named", entered.Data)
	}
	w.call(M, "POST", "/automations/{id}/enter", []any{a.Data.ID}, "", fmt.Sprintf(`{"subscriber_ids":[%d]}`, sub), 200, &entered)
	if entered.Data.Entered != 0 {
		t.Errorf("entering again: %d entered, want 0 (already inside)", entered.Data.Entered)
	}
	w.call(M, "POST", "/automations/{id}/enter", []any{a.Data.ID}, "", `{}`, 422, nil)
	w.call(M, "POST", "/automations/{id}/enter", []any{999999}, "", `{"subscriber_ids":[1]}`, 404, nil)
	w.call(V, "POST", "/automations/{id}/enter", []any{a.Data.ID}, "", `{"subscriber_ids":[1]}`, 403, nil)
	edited := strings.Replace(body, `"Reminder"`, `"Reminder, reworded"`, 1)
	edited = strings.Replace(edited, `"trigger":"api"`, `"trigger":"api","on_edit":"finish"`, 1)
	w.call(M, "PUT", "/automations/{id}", []any{a.Data.ID}, "", edited, 200, &a)
	if a.Data.Version != 2 {
		t.Errorf("edited steps after someone entered: version %d, want 2", a.Data.Version)
	}
	w.call(M, "PUT", "/automations/{id}", []any{a.Data.ID}, "", `{"name":""}`, 422, nil)
	var figs struct{ Data []struct{ Kind string } }
	w.call(V, "GET", "/automations/{id}/figures", []any{a.Data.ID}, "", "", 200, &figs)
	if len(figs.Data) != 4 || figs.Data[2].Kind != "branch" {
		t.Errorf("figures: %+v, want the 4 steps", figs.Data)
	}
	w.call(V, "GET", "/automations/{id}/figures", []any{999999}, "", "", 404, nil)
	var exited struct {
		Data struct {
			Exited  int64
			Unknown []string
		}
	}
	w.call(M, "POST", "/automations/{id}/exit", []any{a.Data.ID}, "", fmt.Sprintf(`{"subscriber_ids":[%d],"emails":["nobody@example.net"],"reason":"bought"}`, sub), 200, &exited)
	if exited.Data.Exited != 1 || len(exited.Data.Unknown) != 1 {
		t.Errorf("exit: %+v, want 1 taken out and the unknown address named", exited.Data)
	}
	w.call(M, "POST", "/automations/{id}/exit", []any{a.Data.ID}, "", fmt.Sprintf(`{"subscriber_ids":[%d]}`, sub), 200, &exited)
	if exited.Data.Exited != 0 {
		t.Errorf("exit again: %d taken out, want 0 (already out)", exited.Data.Exited)
	}
	w.call(M, "POST", "/automations/{id}/exit", []any{a.Data.ID}, "", `{}`, 422, nil)
	w.call(M, "POST", "/automations/{id}/exit", []any{a.Data.ID}, "", `{"subscriber_ids":`, 400, nil)
	w.call(M, "POST", "/automations/{id}/exit", []any{999999}, "", `{"subscriber_ids":[1]}`, 404, nil)
	w.call(V, "POST", "/automations/{id}/exit", []any{a.Data.ID}, "", `{"subscriber_ids":[1]}`, 403, nil)
	// The list, attribute and segment steps.
	var more struct {
		Data struct {
			Steps []struct {
				Kind       string
				TargetList *int64 `json:"target_list_id"`
				AttrKey    string `json:"attr_key"`
				AttrValue  string `json:"attr_value"`
			}
		}
	}
	w.call(M, "POST", "/automations", nil, "", fmt.Sprintf(`{"name":"Onboard","trigger":"api","from_email":"hello@example.com","steps":[
		{"kind":"list_add","target_list_id":%d},{"kind":"set_attribute","attr_key":"stage","attr_value":"onboarded"},
		{"kind":"list_remove","target_list_id":%d}]}`, list, list), 201, &more)
	if len(more.Data.Steps) != 3 || more.Data.Steps[0].TargetList == nil || *more.Data.Steps[0].TargetList != list || more.Data.Steps[1].AttrKey != "stage" || more.Data.Steps[1].AttrValue != "onboarded" {
		t.Errorf("list and attribute steps: %+v", more.Data)
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"api","from_email":"hello@example.com","steps":[{"kind":"list_add","target_list_id":999999}]}`, 422, nil)
	var trig struct {
		Data struct {
			Trigger      string
			TriggerEvent string `json:"trigger_event"`
			TriggerDays  int    `json:"trigger_days"`
			TriggerCamp  *int64 `json:"trigger_campaign_id"`
		}
	}
	w.call(M, "POST", "/automations", nil, "", fmt.Sprintf(`{"name":"Nudge","trigger":"campaign_event","trigger_campaign_id":%d,"trigger_event":"not_opened","trigger_days":3,
		"from_email":"hello@example.com","steps":[{"kind":"set_attribute","attr_key":"nudged","attr_value":"yes"}]}`, camp), 201, &trig)
	if trig.Data.Trigger != "campaign_event" || trig.Data.TriggerEvent != "not_opened" || trig.Data.TriggerDays != 3 || trig.Data.TriggerCamp == nil {
		t.Errorf("campaign-event trigger: %+v", trig.Data)
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"segment","from_email":"hello@example.com","steps":[{"kind":"exit"}]}`, 422, nil)
	var upg struct {
		Data struct {
			Trigger string
			Attr    string  `json:"trigger_attribute"`
			Value   *string `json:"trigger_value"`
		}
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Upgraded","trigger":"attribute_changed","trigger_attribute":"plan","trigger_value":"pro",
		"from_email":"hello@example.com","steps":[{"kind":"set_attribute","attr_key":"thanked","attr_value":"yes"}]}`, 201, &upg)
	if upg.Data.Trigger != "attribute_changed" || upg.Data.Attr != "plan" || upg.Data.Value == nil || *upg.Data.Value != "pro" {
		t.Errorf("attribute-changed trigger: %+v", upg.Data)
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"attribute_changed","from_email":"hello@example.com","steps":[{"kind":"exit"}]}`, 422, nil)
	var bday struct {
		Data struct {
			ID      int64
			Trigger string
			Attr    string `json:"trigger_attribute"`
			Days    int    `json:"trigger_days"`
			Time    string `json:"trigger_time"`
		}
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Birthday","trigger":"anniversary","trigger_attribute":"birthday",
		"from_email":"hello@example.com","steps":[{"kind":"send","subject":"Happy birthday","html":"<p>Cheers</p>"}]}`, 201, &bday)
	if bday.Data.Trigger != "anniversary" || bday.Data.Attr != "birthday" || bday.Data.Time != "09:00" || bday.Data.Days != 0 {
		t.Errorf("anniversary trigger: %+v, want birthday at the default 09:00", bday.Data)
	}
	w.call(M, "PUT", "/automations/{id}", []any{bday.Data.ID}, "", `{"name":"Renewal","trigger":"anniversary","trigger_attribute":"renewal",
		"trigger_days":7,"trigger_time":"10:30","from_email":"hello@example.com"}`, 200, &bday)
	if bday.Data.Attr != "renewal" || bday.Data.Time != "10:30" || bday.Data.Days != 7 {
		t.Errorf("anniversary trigger updated: %+v, want renewal, 7 days before at 10:30", bday.Data)
	}
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"anniversary","trigger_attribute":"birthday","trigger_time":"9h",
		"from_email":"hello@example.com","steps":[{"kind":"exit"}]}`, 422, nil)
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"api","from_email":"hello@example.com","steps":[{"kind":"webhook","webhook_id":999999}]}`, 422, nil)
	w.call(M, "POST", "/automations", nil, "", `{"name":"Bad","trigger":"api","from_email":"hello@example.com","steps":[{"kind":"branch","cond":"segment","segment_id":999999}]}`, 422, nil)
	w.call(V, "DELETE", "/automations/{id}", []any{a.Data.ID}, "", "", 403, nil)
	w.call(M, "DELETE", "/automations/{id}", []any{a.Data.ID}, "", "", 204, nil)
	w.call(M, "DELETE", "/automations/{id}", []any{a.Data.ID}, "", "", 404, nil)
}
