package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

const testUA = "Mozilla/5.0 (X11; Linux x86_64) HeraldPublicTest/1.0"

// pubFixture is the real server on a real database with four lists:
// News (public, single opt-in), Weekly (public, double opt-in), Staff
// (private) and Hidden (private, nobody on it).
type pubFixture struct {
	t                           *testing.T
	app                         *testApp
	store                       *models.Store
	keys                        *token.Keyring
	news, weekly, staff, hidden int64
	hc                          *http.Client // no cookies, no redirects: a stranger's browser
}

func newPubFixture(t *testing.T, store *models.Store) *pubFixture {
	t.Helper()
	f := &pubFixture{t: t, app: newTestApp(t, store)}
	f.store, f.keys = f.app.store, f.app.srv.tracking.keys
	f.hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	mk := func(name, optin, vis string) int64 {
		l := &models.List{Name: name, Description: name + " description", Optin: optin, Visibility: vis}
		if err := f.store.CreateList(context.Background(), l); err != nil {
			t.Fatal(err)
		}
		return l.ID
	}
	f.news = mk("News", models.OptinSingle, models.ListPublic)
	f.weekly = mk("Weekly", models.OptinDouble, models.ListPublic)
	f.staff = mk("Staff", models.OptinSingle, models.ListPrivate)
	f.hidden = mk("Hidden", models.OptinSingle, models.ListPrivate)
	return f
}

type pubResp struct {
	*http.Response
	Body string
	Doc  *goquery.Document
}

// do sends a request as a cookie-less browser; form, when not nil, is
// posted url-encoded.
func (f *pubFixture) do(method, path string, form url.Values) *pubResp {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, f.app.http.URL+path, body)
	req.Header.Set("User-Agent", testUA)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := &pubResp{Response: resp, Body: string(b)}
	r.Doc, _ = goquery.NewDocumentFromReader(strings.NewReader(r.Body))
	return r
}

func (f *pubFixture) subscriber(email, name string, lists map[int64]string) int64 {
	f.t.Helper()
	sub := &models.Subscriber{Email: email, Name: name}
	if err := f.store.CreateSubscriber(context.Background(), sub, lists, models.Evidence{Source: models.SourceAdmin}); err != nil {
		f.t.Fatal(err)
	}
	return sub.ID
}

func (f *pubFixture) consents(id int64) []models.Consent {
	f.t.Helper()
	rows, err := f.store.ConsentsBySubscriber(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return rows
}

func (f *pubFixture) byEmail(email string) *models.Subscriber {
	f.t.Helper()
	sub, err := f.store.SubscriberByEmail(context.Background(), email)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	} else if err != nil {
		f.t.Fatal(err)
	}
	return sub
}

func (f *pubFixture) prefPath(id int64) string { return "/p/" + f.keys.Sign(token.Preferences, id) }

func signupForm(email, name string) url.Values {
	return url.Values{"email": {email}, "name": {name}, "consent": {"yes"}, "website": {""}}
}

// waitForMail waits for the capture outbox to hold a message to addr and
// returns it in full.
func waitForMail(t *testing.T, store *models.Store, addr string) *models.OutboxMessage {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		msgs, err := store.Outbox(ctx, models.OutboxQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if strings.EqualFold(m.RcptTo, addr) {
				full, err := store.OutboxMessage(ctx, m.ID)
				if err != nil {
					t.Fatal(err)
				}
				return full
			}
		}
	}
	t.Fatalf("no message to %s reached the outbox within 20s", addr)
	return nil
}

// mailsTo counts captured messages to addr.
func mailsTo(t *testing.T, store *models.Store, addr string) int {
	t.Helper()
	msgs, err := store.Outbox(context.Background(), models.OutboxQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if strings.EqualFold(m.RcptTo, addr) {
			n++
		}
	}
	return n
}

var confirmLinkRE = regexp.MustCompile(`https?://[^\s"<>/]+(/confirm/[A-Za-z0-9_-]+)`)
var prefLinkRE = regexp.MustCompile(`https?://[^\s"<>/]+(/p/[A-Za-z0-9_-]+)`)

// linkPath returns the path of the first link re matches in s.
func linkPath(t *testing.T, re *regexp.Regexp, s string) string {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no link matching %s in:\n%s", re, s)
	}
	return m[1]
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestSubscribeSingleOptIn(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		path := fmt.Sprintf("/subscribe/%d", f.news)
		page := f.do("GET", path, nil)
		if page.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, page.StatusCode)
		}
		if got := page.Doc.Find(`[data-testid="consent-text"]`).Text(); got != views.ConsentText("News") {
			t.Errorf("consent text = %q, want %q", got, views.ConsentText("News"))
		}
		if page.Doc.Find(`input[name="website"]`).Length() != 1 {
			t.Error("the form has no honeypot field")
		}
		if page.Doc.Find(`input[name="_csrf"]`).Length() != 0 {
			t.Error("the public form carries a dashboard CSRF field")
		}

		resp := f.do("POST", path, signupForm("New.Person@Example.COM", "New Person"))
		if resp.StatusCode != 200 || resp.Doc.Find(`[data-testid="thanks"]`).Length() != 1 {
			t.Fatalf("POST = %d, body %s", resp.StatusCode, resp.Body)
		}
		sub := f.byEmail("New.Person@example.com")
		if sub == nil || sub.Name != "New Person" {
			t.Fatalf("subscriber = %+v, want New.Person@example.com named New Person", sub)
		}
		if got := subStatus(t, s, sub.ID, f.news); got != models.SubConfirmed {
			t.Errorf("subscription = %q, want confirmed at once on a single opt-in list", got)
		}
		rows := f.consents(sub.ID)
		if len(rows) != 1 {
			t.Fatalf("consent rows = %d, want 1", len(rows))
		}
		r := rows[0]
		if r.Action != models.ConsentGranted || r.Source != models.SourceForm || r.IP != "127.0.0.1" || r.UserAgent != testUA ||
			r.Page != path || r.TextHash != sha(views.ConsentText("News")) || r.LawfulBasis != models.BasisConsent {
			t.Errorf("consent row = %+v, want granted via form with IP, UA, page and the consent text's hash", r)
		}
		time.Sleep(300 * time.Millisecond) // give a wrongly sent email time to show up
		if n := mailsTo(t, s, "New.Person@example.com"); n != 0 {
			t.Errorf("single opt-in sent %d emails, want none", n)
		}
	})
}

func TestSubscribeDoubleOptInConfirmation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		resp := f.do("POST", fmt.Sprintf("/subscribe/%d", f.weekly), signupForm("dora@example.org", "Dora"))
		if resp.StatusCode != 200 || !strings.Contains(resp.Doc.Find(`[data-testid="thanks"]`).Text(), "check your inbox") {
			t.Fatalf("POST = %d, body %s", resp.StatusCode, resp.Body)
		}
		sub := f.byEmail("dora@example.org")
		if sub == nil {
			t.Fatal("no subscriber created")
		}
		if got := subStatus(t, s, sub.ID, f.weekly); got != models.SubUnconfirmed {
			t.Fatalf("subscription = %q, want unconfirmed until the link is used", got)
		}

		msg := waitForMail(t, s, "dora@example.org")
		if !strings.Contains(msg.Subject, "Weekly") {
			t.Errorf("subject = %q, want the list's name", msg.Subject)
		}
		var d models.Delivery
		if err := s.DB().Where("id = ?", msg.DeliveryID).First(&d).Error; err != nil {
			t.Fatal(err)
		}
		if d.Priority != models.PriorityTransactional || d.CampaignID != nil {
			t.Errorf("delivery priority %d campaign %v: want the transactional path", d.Priority, d.CampaignID)
		}
		confirm := linkPath(t, confirmLinkRE, msg.Text)
		if html := linkPath(t, confirmLinkRE, msg.HTML); html != confirm {
			t.Errorf("HTML link %s differs from text link %s", html, confirm)
		}
		before := len(f.consents(sub.ID))

		// A mail scanner fetching the link confirms nothing.
		for range 2 {
			page := f.do("GET", confirm, nil)
			if page.StatusCode != 200 || page.Doc.Find(`[data-testid="confirm-button"]`).Length() != 1 {
				t.Fatalf("GET %s = %d, want the confirm button", confirm, page.StatusCode)
			}
		}
		f.do("HEAD", confirm, nil)
		if got := subStatus(t, s, sub.ID, f.weekly); got != models.SubUnconfirmed {
			t.Fatalf("after GETs subscription = %q, want still unconfirmed", got)
		}
		if n := len(f.consents(sub.ID)); n != before {
			t.Fatalf("GET wrote %d consent rows", n-before)
		}

		done := f.do("POST", confirm, url.Values{"confirm": {"yes"}})
		if done.StatusCode != 200 || done.Doc.Find(`[data-testid="confirm"]`).AttrOr("data-state", "") != views.ConfirmDone {
			t.Fatalf("POST confirm = %d, body %s", done.StatusCode, done.Body)
		}
		if got := subStatus(t, s, sub.ID, f.weekly); got != models.SubConfirmed {
			t.Fatalf("subscription = %q, want confirmed", got)
		}
		rows := f.consents(sub.ID)
		if len(rows) != before+1 {
			t.Fatalf("consent rows = %d, want %d", len(rows), before+1)
		}
		proof := rows[len(rows)-1]
		if proof.Action != models.ConsentConfirmed || proof.IP != "127.0.0.1" || proof.UserAgent != testUA ||
			proof.CreatedAt.IsZero() || time.Since(proof.CreatedAt) > time.Minute {
			t.Errorf("proof row = %+v, want confirmed with IP, user agent and time", proof)
		}

		// Replays change nothing and say so.
		again := f.do("POST", confirm, url.Values{"confirm": {"yes"}})
		if again.StatusCode != 200 || again.Doc.Find(`[data-testid="confirm"]`).AttrOr("data-state", "") != views.ConfirmAlready {
			t.Errorf("replay = %d state %q, want already", again.StatusCode, again.Doc.Find(`[data-testid="confirm"]`).AttrOr("data-state", ""))
		}
		if n := len(f.consents(sub.ID)); n != before+1 {
			t.Errorf("replay wrote %d more consent rows", n-before-1)
		}
		if brk, _, err := s.VerifyConsents(context.Background()); err != nil || brk != nil {
			t.Errorf("ledger does not verify: %+v %v", brk, err)
		}

		// A confirmation link altered to another list, forged or of
		// another kind finds nothing.
		altered := []byte(confirm)
		altered[len("/confirm/")+2] ^= 1 // inside the ids
		for name, p := range map[string]string{
			"altered":     string(altered),
			"forged":      "/confirm/" + token.NewKeyring("not the secret").Sign(token.Confirm, sub.ID, f.weekly),
			"preferences": "/confirm/" + f.keys.Sign(token.Preferences, sub.ID),
			"truncated":   confirm[:len(confirm)-3],
		} {
			for _, m := range []string{"GET", "POST"} {
				if r := f.do(m, p, url.Values{"confirm": {"yes"}}); r.StatusCode != 404 {
					t.Errorf("%s %s confirm link = %d, want 404", m, name, r.StatusCode)
				}
			}
		}
	})
}

// TestSubscribeRevealsNothing: new, existing, suppressed and blocklisted
// addresses all get the same answer, and only the new one changes anything.
func TestSubscribeRevealsNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		ctx := context.Background()
		member := f.subscriber("member@example.com", "Member", map[int64]string{f.weekly: models.SubConfirmed, f.news: models.SubConfirmed})
		blocked := f.subscriber("blocked@example.com", "", nil)
		if err := s.SetBlocklisted(ctx, blocked, true, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSuppression(ctx, "gone@example.com", models.SuppressComplaint, ""); err != nil {
			t.Fatal(err)
		}
		for _, list := range []int64{f.weekly, f.news} {
			path := fmt.Sprintf("/subscribe/%d", list)
			answers := map[string]string{}
			for _, addr := range []string{"fresh@example.com", "member@example.com", "gone@example.com", "blocked@example.com"} {
				resp := f.do("POST", path, signupForm(addr, "<b>Someone</b>"))
				if resp.StatusCode != 200 {
					t.Fatalf("POST %s for %s = %d", path, addr, resp.StatusCode)
				}
				html, _ := resp.Doc.Find(`[data-testid="subscribe"]`).Html()
				answers[addr] = strings.ReplaceAll(html, addr, "ADDR")
			}
			for addr, a := range answers {
				if a != answers["fresh@example.com"] {
					t.Errorf("list %d: answer for %s differs from a new address:\n%s\nvs\n%s", list, addr, a, answers["fresh@example.com"])
				}
			}
		}
		if f.byEmail("gone@example.com") != nil {
			t.Error("a suppressed address became a subscriber")
		}
		if sub, _ := s.Subscriber(ctx, member); sub.Name != "Member" {
			t.Errorf("a stranger's sign-up renamed an existing subscriber to %q", sub.Name)
		}
		if got := subStatus(t, s, blocked, f.news); got != "" {
			t.Errorf("blocklisted subscriber's News subscription = %q, want none", got)
		}
		if got := subStatus(t, s, member, f.weekly); got != models.SubConfirmed {
			t.Errorf("member's Weekly subscription = %q, want still confirmed", got)
		}
		waitForMail(t, s, "fresh@example.com")
		time.Sleep(500 * time.Millisecond)
		for _, addr := range []string{"member@example.com", "gone@example.com", "blocked@example.com"} {
			if n := mailsTo(t, s, addr); n != 0 {
				t.Errorf("%d confirmation emails to %s, want none", n, addr)
			}
		}
	})
}

func TestSubscribeRefusals(t *testing.T) {
	f := newPubFixture(t, nil)
	for name, path := range map[string]string{
		"private list": fmt.Sprintf("/subscribe/%d", f.staff),
		"unknown list": "/subscribe/999999",
		"not a number": "/subscribe/news",
		"negative":     "/subscribe/-1",
	} {
		for _, m := range []string{"GET", "POST"} {
			if r := f.do(m, path, signupForm("x@example.com", "")); r.StatusCode != 404 {
				t.Errorf("%s %s = %d, want 404", m, name, r.StatusCode)
			}
		}
	}
	if f.byEmail("x@example.com") != nil {
		t.Error("a refused sign-up created a subscriber")
	}

	path := fmt.Sprintf("/subscribe/%d", f.news)
	bad := f.do("POST", path, url.Values{"email": {"not an address"}, "name": {"Kept Name"}, "consent": {"yes"}})
	if bad.StatusCode != 422 {
		t.Fatalf("bad email = %d, want 422", bad.StatusCode)
	}
	if msg := bad.Doc.Find(`[data-testid="err-email"]`).Text(); !strings.Contains(msg, "not a valid email address") {
		t.Errorf("email error = %q", msg)
	}
	if v, _ := bad.Doc.Find(`input[name="name"]`).Attr("value"); v != "Kept Name" {
		t.Errorf("name field = %q, want what was typed", v)
	}
	noConsent := f.do("POST", path, url.Values{"email": {"y@example.com"}})
	if noConsent.StatusCode != 422 || !strings.Contains(noConsent.Doc.Find(`[data-testid="err-consent"]`).Text(), "Tick the box") {
		t.Errorf("no consent = %d, body %s", noConsent.StatusCode, noConsent.Body)
	}
	if f.byEmail("y@example.com") != nil {
		t.Error("a sign-up without consent created a subscriber")
	}

	// The honeypot: a bot gets the thank-you, and nothing is stored.
	form := signupForm("bot@example.com", "Bot")
	form.Set("website", "http://spam.example")
	if r := f.do("POST", path, form); r.StatusCode != 200 || r.Doc.Find(`[data-testid="thanks"]`).Length() != 1 {
		t.Errorf("honeypot = %d, want the ordinary thank-you", r.StatusCode)
	}
	if f.byEmail("bot@example.com") != nil {
		t.Error("a sign-up with the honeypot filled created a subscriber")
	}
}

func TestSubscribeRateLimit(t *testing.T) {
	f := newPubFixture(t, nil)
	path := fmt.Sprintf("/subscribe/%d", f.news)
	for i := range signupsPerMinute {
		if r := f.do("POST", path, signupForm(fmt.Sprintf("p%d@example.com", i), "")); r.StatusCode != 200 {
			t.Fatalf("sign-up %d = %d, want 200", i+1, r.StatusCode)
		}
	}
	r := f.do("POST", path, signupForm("one-too-many@example.com", ""))
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(r.Body, "Wait a minute") {
		t.Fatalf("sign-up %d = %d, want 429 with advice; body %s", signupsPerMinute+1, r.StatusCode, r.Body)
	}
	if f.byEmail("one-too-many@example.com") != nil {
		t.Error("a rate-limited sign-up created a subscriber")
	}
	// Reading the form is not limited.
	if r := f.do("GET", path, nil); r.StatusCode != 200 {
		t.Errorf("GET while limited = %d, want 200", r.StatusCode)
	}
}

func TestPreferenceCentreLists(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		id := f.subscriber("pat@example.com", "Pat", map[int64]string{f.news: models.SubConfirmed, f.staff: models.SubConfirmed})
		path := f.prefPath(id)
		page := f.do("GET", path, nil)
		if page.StatusCode != 200 {
			t.Fatalf("GET = %d", page.StatusCode)
		}
		if got := page.Doc.Find(`[data-testid="email"]`).Text(); got != "pat@example.com" {
			t.Errorf("email = %q", got)
		}
		checked := func(p *pubResp, list int64) (shown, on bool) {
			box := p.Doc.Find(fmt.Sprintf(`[data-testid="list-%d"] input[type="checkbox"]`, list))
			_, on = box.Attr("checked")
			return box.Length() == 1, on
		}
		for _, c := range []struct {
			list      int64
			shown, on bool
		}{{f.news, true, true}, {f.weekly, true, false}, {f.staff, true, true}, {f.hidden, false, false}} {
			if shown, on := checked(page, c.list); shown != c.shown || on != c.on {
				t.Errorf("list %d shown=%v ticked=%v, want %v %v", c.list, shown, on, c.shown, c.on)
			}
		}
		if !strings.Contains(page.Doc.Find(fmt.Sprintf(`[data-testid="list-%d"]`, f.staff)).Text(), "cannot rejoin") {
			t.Error("the private list is not marked leave-only")
		}

		// Keep Weekly only, and try to slip in the private Hidden list.
		resp := f.do("POST", path+"/lists", url.Values{"list": {fmt.Sprint(f.weekly), fmt.Sprint(f.hidden), "junk"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?saved=lists" {
			t.Fatalf("POST lists = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		want := map[int64]string{f.news: models.SubUnsubscribed, f.weekly: models.SubConfirmed, f.staff: models.SubUnsubscribed, f.hidden: ""}
		for list, w := range want {
			if got := subStatus(t, s, id, list); got != w {
				t.Errorf("list %d = %q, want %q", list, got, w)
			}
		}
		rows := f.consents(id)
		var pref []models.Consent
		for _, r := range rows {
			if r.Source == models.SourcePreference {
				pref = append(pref, r)
			}
		}
		if len(pref) != 3 {
			t.Fatalf("preference-centre consent rows = %d, want 3 (join Weekly, leave News, leave Staff): %+v", len(pref), rows)
		}
		for _, r := range pref {
			if r.IP != "127.0.0.1" || r.UserAgent != testUA || r.Actor != "subscriber" {
				t.Errorf("row %+v lacks IP, user agent or actor", r)
			}
		}

		after := f.do("GET", path+"?saved=lists", nil)
		if got := after.Doc.Find(`[data-testid="saved"]`).Text(); got != "Your lists are saved." {
			t.Errorf("saved message = %q", got)
		}
		if shown, _ := checked(after, f.staff); shown {
			t.Error("the private list is still offered after leaving it")
		}
		hist := after.Doc.Find(`[data-testid="consent-history"] tbody`).Text()
		for _, w := range []string{"preference centre", "unsubscribed", "Weekly", "Staff", "added by our staff"} {
			if !strings.Contains(hist, w) {
				t.Errorf("consent history lacks %q: %q", w, hist)
			}
		}
		if r := f.do("GET", path+"?saved=<script>x</script>", nil); r.Doc.Find(`[data-testid="saved"]`).Length() != 0 {
			t.Error("an unknown saved= value reached the page")
		}

		// Saving again changes nothing.
		f.do("POST", path+"/lists", url.Values{"list": {fmt.Sprint(f.weekly)}})
		if n := len(f.consents(id)); n != len(rows) {
			t.Errorf("an unchanged save wrote %d rows", n-len(rows))
		}
	})
}

func TestPreferenceCentreConfirmsPending(t *testing.T) {
	f := newPubFixture(t, nil)
	id := f.subscriber("wait@example.com", "", map[int64]string{f.weekly: models.SubUnconfirmed})
	page := f.do("GET", f.prefPath(id), nil)
	if !strings.Contains(page.Doc.Find(fmt.Sprintf(`[data-testid="list-%d"]`, f.weekly)).Text(), "waiting for your confirmation") {
		t.Error("a pending subscription is not marked as waiting")
	}
	f.do("POST", f.prefPath(id)+"/lists", url.Values{"list": {fmt.Sprint(f.weekly)}})
	if got := subStatus(t, f.store, id, f.weekly); got != models.SubConfirmed {
		t.Errorf("Weekly = %q, want confirmed by saving with the box ticked", got)
	}
	rows := f.consents(id)
	if last := rows[len(rows)-1]; last.Action != models.ConsentConfirmed || last.Source != models.SourcePreference {
		t.Errorf("last row = %+v, want confirmed from the preference centre", last)
	}
}

func TestPreferenceCentreName(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		id := f.subscriber("sam@example.com", "Sam", nil)
		path := f.prefPath(id)
		evil := `<script>alert(1)</script><img src=x onerror="alert(2)">"'`
		resp := f.do("POST", path+"/name", url.Values{"name": {evil}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST name = %d", resp.StatusCode)
		}
		if sub, _ := s.Subscriber(context.Background(), id); sub.Name != evil {
			t.Fatalf("name = %q, want it stored as typed", sub.Name)
		}
		page := f.do("GET", path+"?saved=name", nil)
		if page.Doc.Find("script").Length() != 0 || page.Doc.Find("img[onerror]").Length() != 0 || strings.Contains(page.Body, "<script>alert") {
			t.Fatalf("the name reached the page as markup:\n%s", page.Body)
		}
		if v, _ := page.Doc.Find(`[data-testid="name"]`).Attr("value"); v != evil {
			t.Errorf("name field = %q, want the name, escaped in the HTML", v)
		}
		if got := page.Doc.Find(`[data-testid="saved"]`).Text(); got != "Your name is saved." {
			t.Errorf("saved message = %q", got)
		}
		long := f.do("POST", path+"/name", url.Values{"name": {strings.Repeat("n", 201)}})
		if long.StatusCode != 422 || !strings.Contains(long.Doc.Find(`[data-testid="err-name"]`).Text(), "under 200") {
			t.Errorf("long name = %d, want 422 with a message", long.StatusCode)
		}
		if sub, _ := s.Subscriber(context.Background(), id); sub.Name != evil {
			t.Errorf("a refused name was stored: %q", sub.Name)
		}
	})
}

// TestPreferenceTokens: the token in the URL is the only authority. A
// forged, altered or other-kind token gets 404 and changes nothing; a valid
// token acts on its own subscriber only, whatever the form says.
func TestPreferenceTokens(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		ctx := context.Background()
		a := f.subscriber("a@example.com", "Alice", map[int64]string{f.news: models.SubConfirmed})
		b := f.subscriber("b@example.com", "Bob", map[int64]string{f.news: models.SubConfirmed})
		good := f.keys.Sign(token.Preferences, a)
		flipped := []byte(good)
		flipped[len(flipped)-2] ^= 1
		bad := map[string]string{
			"forged":         token.NewKeyring("guess").Sign(token.Preferences, a),
			"altered":        string(flipped),
			"unsubscribe":    f.keys.Sign(token.Unsubscribe, a),
			"confirm":        f.keys.Sign(token.Confirm, a, f.news),
			"open":           f.keys.Sign(token.Open, a),
			"garbage":        "not-a-token",
			"very long":      strings.Repeat("A", 200),
			"no such person": f.keys.Sign(token.Preferences, 999999),
		}
		before := len(f.consents(a))
		for name, tok := range bad {
			base := "/p/" + tok
			for _, r := range []struct {
				method, path string
				form         url.Values
			}{
				{"GET", base, nil},
				{"POST", base + "/lists", url.Values{}},
				{"POST", base + "/name", url.Values{"name": {"Mallory"}}},
				{"POST", base + "/export", url.Values{}},
				{"GET", base + "/erase", nil},
				{"POST", base + "/erase", url.Values{"confirm": {"yes"}}},
			} {
				resp := f.do(r.method, r.path, r.form)
				if resp.StatusCode != 404 {
					t.Errorf("%s token: %s %s = %d, want 404", name, r.method, r.path, resp.StatusCode)
				}
				if strings.Contains(resp.Body, "a@example.com") {
					t.Errorf("%s token: %s %s shows the subscriber's address", name, r.method, r.path)
				}
				if !strings.Contains(resp.Body, `data-testid="error-page"`) || strings.Contains(resp.Body, "dashboard") {
					t.Errorf("%s token: %s %s: want the error page without a way into the dashboard (subscribers cannot use it)", name, r.method, r.path)
				}
			}
		}
		sub, err := s.Subscriber(ctx, a)
		if err != nil || sub.Name != "Alice" || len(f.consents(a)) != before || subStatus(t, s, a, f.news) != models.SubConfirmed {
			t.Fatalf("after bad tokens subscriber = %+v (%v), consents %d→%d", sub, err, before, len(f.consents(a)))
		}

		// Bob's token, with Alice's id in every field a form could carry,
		// acts on Bob.
		bp := "/p/" + f.keys.Sign(token.Preferences, b)
		f.do("POST", bp+"/name?id="+fmt.Sprint(a), url.Values{"name": {"Robert"}, "id": {fmt.Sprint(a)}, "subscriber": {fmt.Sprint(a)}})
		f.do("POST", bp+"/lists", url.Values{"id": {fmt.Sprint(a)}})
		if sa, _ := s.Subscriber(ctx, a); sa.Name != "Alice" || subStatus(t, s, a, f.news) != models.SubConfirmed {
			t.Errorf("Bob's token changed Alice: %+v, News %q", sa, subStatus(t, s, a, f.news))
		}
		if sb, _ := s.Subscriber(ctx, b); sb.Name != "Robert" || subStatus(t, s, b, f.news) != models.SubUnsubscribed {
			t.Errorf("Bob's token did not act on Bob: %+v, News %q", sb, subStatus(t, s, b, f.news))
		}
		if page := f.do("GET", bp, nil); strings.Contains(page.Body, "a@example.com") {
			t.Error("Bob's page shows Alice's address")
		}
	})
}

func TestPreferenceCentreExportAndErase(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newPubFixture(t, s)
		ctx := context.Background()
		id := f.subscriber("erin@example.com", "Erin", map[int64]string{f.news: models.SubConfirmed, f.weekly: models.SubConfirmed})
		path := f.prefPath(id)

		exp := f.do("POST", path+"/export", url.Values{})
		if exp.StatusCode != 200 || !strings.HasPrefix(exp.Header.Get("Content-Disposition"), "attachment;") ||
			!strings.HasPrefix(exp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("export = %d, %q, %q", exp.StatusCode, exp.Header.Get("Content-Type"), exp.Header.Get("Content-Disposition"))
		}
		if cc := exp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("export Cache-Control = %q, want no-store", cc)
		}
		var data models.SubjectData
		if err := json.Unmarshal([]byte(exp.Body), &data); err != nil {
			t.Fatalf("export is not JSON: %v\n%s", err, exp.Body)
		}
		if data.Profile.Email != "erin@example.com" || data.Profile.Name != "Erin" || len(data.Memberships) != 2 || len(data.Consents) != 2 {
			t.Errorf("export = %+v, want Erin's profile, 2 memberships and 2 consents", data)
		}

		// The confirmation page erases nothing; neither does a POST without
		// the confirmation field.
		conf := f.do("GET", path+"/erase", nil)
		if conf.StatusCode != 200 || conf.Doc.Find(`[data-testid="erase-button"]`).Length() != 1 {
			t.Fatalf("erase page = %d", conf.StatusCode)
		}
		if r := f.do("POST", path+"/erase", url.Values{}); r.StatusCode != 400 {
			t.Errorf("erase without confirm = %d, want 400", r.StatusCode)
		}
		if _, err := s.Subscriber(ctx, id); err != nil {
			t.Fatalf("subscriber gone before confirming: %v", err)
		}

		done := f.do("POST", path+"/erase", url.Values{"confirm": {"yes"}})
		if done.StatusCode != 200 || done.Doc.Find(`[data-testid="erased"]`).Length() != 1 {
			t.Fatalf("erase = %d, body %s", done.StatusCode, done.Body)
		}
		if _, err := s.Subscriber(ctx, id); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("subscriber after erasure: err = %v, want not found", err)
		}
		if f.byEmail("erin@example.com") != nil {
			t.Error("the address is still a subscriber")
		}
		for _, r := range f.consents(id) {
			if r.Email != "" || r.IP != "" || r.UserAgent != "" {
				t.Errorf("ledger row %d keeps personal data: %+v", r.ID, r)
			}
		}
		if r := f.do("GET", path, nil); r.StatusCode != 404 || strings.Contains(r.Body, "erin@") {
			t.Errorf("preference link after erasure = %d, want 404", r.StatusCode)
		}
		if r := f.do("POST", path+"/erase", url.Values{"confirm": {"yes"}}); r.StatusCode != 404 {
			t.Errorf("second erase = %d, want 404", r.StatusCode)
		}
		// The address cannot be signed up again by a stranger.
		f.do("POST", fmt.Sprintf("/subscribe/%d", f.news), signupForm("erin@example.com", ""))
		if f.byEmail("erin@example.com") != nil {
			t.Error("an erased address was signed up again")
		}
	})
}

func TestUnsubscribePageLinksToBrandedPreferences(t *testing.T) {
	f := newPubFixture(t, nil)
	ctx := context.Background()
	for k, v := range map[string]string{models.SettingOrgName: "Acme <Co>", models.SettingLogoURL: "https://cdn.example/logo.png"} {
		if err := f.store.SetSetting(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	id := f.subscriber("uma@example.com", "", map[int64]string{f.news: models.SubConfirmed})
	c := &models.Campaign{Name: "Spring", FromEmail: "news@example.com"}
	if err := f.store.CreateCampaign(ctx, c, []int64{f.news}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.StartCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		var err error
		if done, err = f.store.MaterializeCampaign(ctx, c.ID, 1000); err != nil {
			t.Fatal(err)
		}
	}
	var delivery int64
	if err := f.store.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?", c.ID, id).Scan(&delivery).Error; err != nil || delivery == 0 {
		t.Fatalf("delivery: %d %v", delivery, err)
	}
	page := f.do("GET", "/u/"+f.keys.Sign(token.Unsubscribe, delivery), nil)
	if page.StatusCode != 200 {
		t.Fatalf("unsubscribe page = %d", page.StatusCode)
	}
	if got := page.Doc.Find(`[data-testid="brand-name"]`).Text(); got != "Acme <Co>" {
		t.Errorf("brand = %q", got)
	}
	if src, _ := page.Doc.Find(`[data-testid="brand-logo"]`).Attr("src"); src != "https://cdn.example/logo.png" {
		t.Errorf("logo = %q", src)
	}
	href, _ := page.Doc.Find(`[data-testid="preferences"]`).Attr("href")
	if href != f.prefPath(id) {
		t.Fatalf("preferences link = %q, want %q", href, f.prefPath(id))
	}
	if pref := f.do("GET", href, nil); pref.StatusCode != 200 || pref.Doc.Find(`[data-testid="email"]`).Text() != "uma@example.com" {
		t.Errorf("preference centre from the unsubscribe page = %d", pref.StatusCode)
	}
}

func TestSettingsLogoAndTrackingMode(t *testing.T) {
	f := newPubFixture(t, nil)
	admin := f.app.user(models.RoleAdmin)
	ctx := context.Background()
	base := url.Values{"org_name": {"Acme"}, "tracking_mode": {models.TrackingFull}}
	with := func(k, v string) url.Values {
		out := url.Values{}
		for kk, vv := range base {
			out[kk] = vv
		}
		out.Set(k, v)
		return out
	}
	for _, c := range []struct{ field, value, want string }{
		{"logo_url", "http://cdn.example/logo.png", "https://"},
		{"logo_url", "javascript:alert(1)", "https://"},
		{"logo_url", "https://user:pw@cdn.example/l.png", "passwords"},
		{"logo_url", `https://cdn.example/" onerror="x`, "not a valid"},
		{"tracking_mode", "spy", "Choose full"},
		{"optin_from", "nobody", "not a valid email"},
		{"spam_limit", "high", "between 0.1 and 100"},
		{"spam_limit", "0", "between 0.1 and 100"},
		{"spam_action", "drop", "Choose warn or block"},
	} {
		resp := admin.postForm("/settings", with(c.field, c.value))
		if resp.StatusCode != 422 || !strings.Contains(resp.Doc.Find(`[data-testid="err-`+c.field+`"]`).Text(), c.want) {
			t.Errorf("%s=%q: %d, error %q, want 422 mentioning %q", c.field, c.value, resp.StatusCode,
				resp.Doc.Find(`[data-testid="err-`+c.field+`"]`).Text(), c.want)
		}
	}
	if v, _ := f.store.Setting(ctx, models.SettingLogoURL); v != "" {
		t.Fatalf("a refused logo was stored: %q", v)
	}
	ok := with("logo_url", "https://cdn.example/logo.png")
	ok.Set("tracking_mode", models.TrackingAggregate)
	ok.Set("optin_from", "Hello@Acme.example")
	ok.Set("spam_limit", " 4.5 ")
	ok.Set("spam_action", mailer.SpamActionBlock)
	if resp := admin.postForm("/settings", ok); resp.StatusCode != 200 || resp.Doc.Find(`[data-testid="flash"]`).Length() != 1 {
		t.Fatalf("save = %d", resp.StatusCode)
	}
	for k, want := range map[string]string{models.SettingLogoURL: "https://cdn.example/logo.png",
		models.SettingTrackingMode: models.TrackingAggregate, models.SettingOptinFrom: "Hello@acme.example",
		mailer.SettingSpamLimit: "4.5", mailer.SettingSpamAction: mailer.SpamActionBlock} {
		if v, _ := f.store.Setting(ctx, k); v != want {
			t.Errorf("setting %s = %q, want %q", k, v, want)
		}
	}
	page := admin.get("/settings")
	if v, _ := page.Doc.Find(`input[name="tracking_mode"][checked]`).Attr("value"); v != models.TrackingAggregate {
		t.Errorf("checked tracking mode = %q", v)
	}
	if n := page.Doc.Find(`[data-testid="tracking-mode"] label`).Length(); n != 3 {
		t.Errorf("tracking modes offered = %d, want 3", n)
	}
	sub := f.do("GET", fmt.Sprintf("/subscribe/%d", f.news), nil)
	if src, _ := sub.Doc.Find(`[data-testid="brand-logo"]`).Attr("src"); src != "https://cdn.example/logo.png" {
		t.Errorf("subscribe page logo = %q", src)
	}
	var audits int64
	f.store.DB().Raw("SELECT count(*) FROM audit_log WHERE action = 'settings.update'").Scan(&audits)
	if audits < 3 {
		t.Errorf("settings audit entries = %d, want one per changed setting", audits)
	}
	// Viewers may read but not change.
	viewer := f.app.user(models.RoleViewer)
	if r := viewer.postForm("/settings", with("tracking_mode", models.TrackingOff)); r.StatusCode != 403 {
		t.Errorf("viewer save = %d, want 403", r.StatusCode)
	}
}

// TestEmbedSnippetPostsToTheList: the dashboard's snippet is the public
// form, and posting its fields subscribes.
func TestEmbedSnippetPostsToTheList(t *testing.T) {
	f := newPubFixture(t, nil)
	news, err := f.store.List(context.Background(), f.news)
	if err != nil {
		t.Fatal(err)
	}
	snippet := views.EmbedSnippet(f.app.http.URL, *news)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(snippet))
	if err != nil {
		t.Fatal(err)
	}
	form := doc.Find("form")
	if action, _ := form.Attr("action"); action != fmt.Sprintf("%s/subscribe/%d", f.app.http.URL, f.news) {
		t.Fatalf("snippet action = %q", action)
	}
	if form.Find(`input[name="website"]`).Length() != 1 || !strings.Contains(form.Text(), views.ConsentText("News")) {
		t.Errorf("snippet lacks the honeypot or the consent text:\n%s", snippet)
	}
	vals := url.Values{}
	form.Find("input").Each(func(_ int, in *goquery.Selection) {
		name, _ := in.Attr("name")
		vals.Set(name, in.AttrOr("value", ""))
	})
	vals.Set("email", "embedded@example.com")
	resp := f.do("POST", fmt.Sprintf("/subscribe/%d", f.news), vals)
	if resp.StatusCode != 200 || f.byEmail("embedded@example.com") == nil {
		t.Errorf("posting the snippet's fields = %d, subscriber %v", resp.StatusCode, f.byEmail("embedded@example.com"))
	}
	staff := models.List{ID: f.staff, Name: "Staff", Visibility: models.ListPrivate}
	if got := views.EmbedSnippet(f.app.http.URL, staff); got != "" {
		t.Errorf("private list snippet = %q, want none", got)
	}

	// The dashboard block shows the snippet as text to copy, not as a form.
	render := func(l models.List) *goquery.Document {
		var b strings.Builder
		if err := views.EmbedCode(f.app.http.URL, l).Render(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		d, _ := goquery.NewDocumentFromReader(strings.NewReader(b.String()))
		return d
	}
	block := render(*news)
	if got := block.Find(`[data-testid="embed-snippet"]`).Text(); got != snippet {
		t.Errorf("embed block shows %q, want the snippet", got)
	}
	if block.Find("form").Length() != 0 {
		t.Error("the embed block renders a live form instead of its code")
	}
	if render(staff).Find(`[data-testid="embed-code"]`).Length() != 0 {
		t.Error("a private list shows an embed block")
	}
}
