package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
)

// trackFixture is the real server with the tracker's routes on a database
// holding two sent campaigns to one list of two subscribers.
type trackFixture struct {
	t               *testing.T
	app             *testApp
	store           *models.Store
	keys            *token.Keyring
	tr              *Tracking
	list            int64
	campaign, other int64   // other has UTM off
	subs            []int64 // a@, b@
	deliveries      []int64 // of campaign, one per subscriber
	otherDelivery   int64   // of other, to a@
	links           []int64 // of campaign
	otherLink       int64
	hc              *http.Client // no cookies, never follows redirects
	closeOnce       sync.Once
}

func newTrackFixture(t *testing.T, store *models.Store, opts TrackingOptions) *trackFixture {
	t.Helper()
	ctx := context.Background()
	f := &trackFixture{t: t, store: store, keys: token.NewKeyring("tracking-test-secret")}
	// The test client stands for a proxy on loopback that passes the
	// visitor's address in X-Forwarded-For.
	f.app = newTestAppWith(t, store, func(c *config.Config) {
		c.Proxies = []*net.IPNet{{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(32, 32)}}
	})
	f.tr = NewTracking(store, f.keys, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	MountTracking(f.app.srv.echo, f.tr)
	t.Cleanup(func() { f.close() })
	f.hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := store.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	f.list = l.ID
	for _, e := range []string{"a@example.com", "b@example.com"} {
		sub := &models.Subscriber{Email: e}
		if err := store.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		f.subs = append(f.subs, sub.ID)
	}
	f.campaign, f.deliveries = f.sentCampaign("Spring", true)
	var other []int64
	f.other, other = f.sentCampaign("Other", false)
	f.otherDelivery = other[0]
	var err error
	if f.links, err = store.EnsureLinks(ctx, f.campaign, []string{"https://shop.example/a?x=1&y=%20z#frag", "https://shop.example/b"}); err != nil {
		t.Fatal(err)
	}
	ol, err := store.EnsureLinks(ctx, f.other, []string{"https://other.example/p?q=1#top"})
	if err != nil {
		t.Fatal(err)
	}
	f.otherLink = ol[0]
	return f
}

// sentCampaign starts a campaign to the list, materialises its deliveries
// and marks them sent an hour ago.
func (f *trackFixture) sentCampaign(name string, utm bool) (int64, []int64) {
	f.t.Helper()
	ctx := context.Background()
	c := &models.Campaign{Name: name, FromEmail: "news@example.com", TrackOpens: true, TrackClicks: true, UTM: utm}
	if err := f.store.CreateCampaign(ctx, c, []int64{f.list}); err != nil {
		f.t.Fatal(err)
	}
	ds := f.materialize(c.ID)
	var ids []int64
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	if err := f.store.DB().Exec("UPDATE deliveries SET status = 'sent', sent_at = ? WHERE campaign_id = ?",
		time.Now().UTC().Add(-time.Hour), c.ID).Error; err != nil {
		f.t.Fatal(err)
	}
	return c.ID, ids
}

// materialize starts a campaign and returns the deliveries the mailer
// would send, ordered by subscriber.
func (f *trackFixture) materialize(id int64) []models.Delivery {
	f.t.Helper()
	ctx := context.Background()
	if err := f.store.StartCampaign(ctx, id); err != nil {
		f.t.Fatal(err)
	}
	for done := false; !done; {
		var err error
		if done, err = f.store.MaterializeCampaign(ctx, id, 1000); err != nil {
			f.t.Fatal(err)
		}
	}
	ds, err := f.store.DeliveriesOfCampaign(ctx, id, models.DeliveryQueued, 0, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func (f *trackFixture) close() {
	f.closeOnce.Do(func() {
		if err := f.tr.Close(context.Background()); err != nil {
			f.t.Errorf("Close() = %v", err)
		}
	})
}

func (f *trackFixture) request(method, path string, body string, header map[string]string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.app.http.URL+path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// clickPath is the click URL path of a delivery's link in a token of kind:
// the older Click (delivery, link) or CampaignClick (delivery, link,
// campaign), which the mailer signs now.
func (f *trackFixture) clickPath(kind token.Kind, delivery, link int64) string {
	if kind == token.Click {
		return "/t/c/" + f.keys.Sign(token.Click, delivery, link)
	}
	campaign := f.campaign
	if delivery == f.otherDelivery {
		campaign = f.other
	}
	return "/t/c/" + f.keys.Sign(token.CampaignClick, delivery, link, campaign)
}

var clickKinds = map[string]token.Kind{"old token": token.Click, "campaign token": token.CampaignClick}

const safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"

func (f *trackFixture) get(path, ua string) *http.Response {
	f.t.Helper()
	resp, _ := f.request("GET", path, "", map[string]string{"User-Agent": ua})
	return resp
}

// events closes the tracker (writing what is buffered) and returns the
// stored events.
func (f *trackFixture) events() []models.Event {
	f.t.Helper()
	f.close()
	var out []models.Event
	if err := f.store.DB().Raw("SELECT delivery_id, campaign_id, subscriber_id, link_id, kind, machine, ip, user_agent FROM events ORDER BY id").Scan(&out).Error; err != nil {
		f.t.Fatal(err)
	}
	return out
}

func TestOpenPixel(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newTrackFixture(t, s, TrackingOptions{})
		resp, body := f.request("GET", "/t/o/"+f.keys.Sign(token.Open, f.deliveries[0]), "", map[string]string{"User-Agent": safari})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || !bytes.Equal([]byte(body), pixel) {
			t.Fatalf("open = %d %q, %d bytes; want 200 image/gif pixel", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") || !strings.Contains(cc, "no-cache") {
			t.Errorf("Cache-Control = %q, want no-store, no-cache", cc)
		}
		evs := f.events()
		want := models.Event{DeliveryID: f.deliveries[0], CampaignID: f.campaign, SubscriberID: f.subs[0], Kind: models.EventOpen, IP: "127.0.0.1", UserAgent: safari}
		if len(evs) != 1 || evs[0] != want {
			t.Errorf("events = %+v, want [%+v]", evs, want)
		}
	})
}

func TestClickRedirect(t *testing.T) {
	for name, kind := range clickKinds {
		t.Run(name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, s *models.Store) {
				f := newTrackFixture(t, s, TrackingOptions{})
				tests := []struct {
					name, path, want string
				}{
					{"utm added, query and fragment kept", f.clickPath(kind, f.deliveries[0], f.links[0]),
						"https://shop.example/a?x=1&y=%20z&utm_campaign=Spring&utm_medium=email&utm_source=herald#frag"},
					{"request query ignored", f.clickPath(kind, f.deliveries[1], f.links[1]) + "?url=https://evil.example/&to=https://evil.example/",
						"https://shop.example/b?utm_campaign=Spring&utm_medium=email&utm_source=herald"},
					{"no utm when the campaign does not ask", f.clickPath(kind, f.otherDelivery, f.otherLink),
						"https://other.example/p?q=1#top"},
				}
				for _, tt := range tests {
					resp := f.get(tt.path, safari)
					if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tt.want {
						t.Errorf("%s: %d Location %q, want 302 %q", tt.name, resp.StatusCode, resp.Header.Get("Location"), tt.want)
					}
				}
				// A HEAD from a link checker is answered but not recorded.
				resp, _ := f.request("HEAD", f.clickPath(kind, f.deliveries[0], f.links[1]), "", map[string]string{"User-Agent": safari})
				if resp.StatusCode != http.StatusFound {
					t.Errorf("HEAD click = %d, want 302", resp.StatusCode)
				}
				evs := f.events()
				if len(evs) != 3 {
					t.Fatalf("recorded %d events, want 3: %+v", len(evs), evs)
				}
				want := models.Event{DeliveryID: f.deliveries[0], CampaignID: f.campaign, SubscriberID: f.subs[0], LinkID: f.links[0],
					Kind: models.EventClick, IP: "127.0.0.1", UserAgent: safari}
				if evs[0] != want {
					t.Errorf("first click recorded as %+v, want %+v", evs[0], want)
				}
				if e := evs[2]; e.CampaignID != f.other || e.SubscriberID != f.subs[0] || e.LinkID != f.otherLink {
					t.Errorf("click of the other campaign recorded as %+v", e)
				}
			})
		})
	}
}

func TestTrackingRefusesBadTokens(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newTrackFixture(t, s, TrackingOptions{})
		good := f.keys.Sign(token.Open, f.deliveries[0])
		// Change one character inside the tag (not the last one, whose low
		// bits base64 may ignore).
		i := len(good) - 5
		altered := good[:i] + map[bool]string{true: "A", false: "B"}[good[i] != 'A'] + good[i+1:]
		foreign := token.NewKeyring("someone-else")
		tests := []struct{ name, path string }{
			{"altered open token", "/t/o/" + altered},
			{"garbage", "/t/o/not-a-token"},
			{"other server's key", "/t/o/" + foreign.Sign(token.Open, f.deliveries[0])},
			{"unsubscribe token as open", "/t/o/" + f.keys.Sign(token.Unsubscribe, f.deliveries[0])},
			{"open token as click", "/t/c/" + good},
			{"click token of another kind's ids", "/t/c/" + f.keys.Sign(token.Open, f.deliveries[0], f.links[0])},
			{"link of another campaign", "/t/c/" + f.keys.Sign(token.Click, f.deliveries[0], f.otherLink)},
			{"unknown link", "/t/c/" + f.keys.Sign(token.Click, f.deliveries[0], 999999)},
			{"unknown delivery", "/t/c/" + f.keys.Sign(token.Click, 999999, f.links[0])},
			{"forged click", "/t/c/" + foreign.Sign(token.Click, f.deliveries[0], f.links[0])},
			{"campaign token, link of another campaign", "/t/c/" + f.keys.Sign(token.CampaignClick, f.deliveries[0], f.otherLink, f.campaign)},
			{"campaign token, unknown link", "/t/c/" + f.keys.Sign(token.CampaignClick, f.deliveries[0], 999999, f.campaign)},
			{"campaign token, unknown campaign", "/t/c/" + f.keys.Sign(token.CampaignClick, f.deliveries[0], f.links[0], 999999)},
			{"forged campaign token", "/t/c/" + foreign.Sign(token.CampaignClick, f.deliveries[0], f.links[0], f.campaign)},
		}
		for _, tt := range tests {
			resp := f.get(tt.path, safari)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: status %d, want 404", tt.name, resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("%s: redirected to %q", tt.name, loc)
			}
		}
		// A genuine token of a delivery that no longer exists still gets the
		// pixel, so old mail renders, but nothing is recorded.
		if resp := f.get("/t/o/"+f.keys.Sign(token.Open, 999999), safari); resp.StatusCode != 200 {
			t.Errorf("open of unknown delivery: status %d, want 200", resp.StatusCode)
		}
		// Likewise a campaign click token still redirects (the token says
		// where), and the writer drops the event.
		if resp := f.get("/t/c/"+f.keys.Sign(token.CampaignClick, 999999, f.links[0], f.campaign), safari); resp.StatusCode != http.StatusFound {
			t.Errorf("campaign click of unknown delivery: status %d, want 302", resp.StatusCode)
		}
		if evs := f.events(); len(evs) != 0 {
			t.Errorf("recorded %+v, want nothing", evs)
		}
	})
}

func TestMachineTraffic(t *testing.T) {
	for name, kind := range clickKinds {
		for _, batch := range []int{0, 1} { // 1: every event is its own batch, so scanner bursts are flagged after the fact
			t.Run(name+"/"+map[int]string{0: "batched", 1: "one per batch"}[batch], func(t *testing.T) { testMachineTraffic(t, kind, batch) })
		}
	}
}

func testMachineTraffic(t *testing.T, kind token.Kind, batch int) {
	{
		{
			f := newTrackFixture(t, testdb.SQLite(t), TrackingOptions{BatchSize: batch})
			ctx := context.Background()
			open := func(i int) string { return "/t/o/" + f.keys.Sign(token.Open, f.deliveries[i]) }
			click := func(d int64, l int64) string { return f.clickPath(kind, d, l) }

			f.get(open(0), safari)                                                                                   // human
			f.get(open(0), "Mozilla/5.0")                                                                            // Apple MPP proxy
			f.request("GET", open(1), "", map[string]string{"User-Agent": safari, "X-Forwarded-For": "17.58.100.1"}) // Apple's network
			f.request("GET", open(1), "", map[string]string{"User-Agent": ""})                                       // no agent

			f.get(click(f.deliveries[0], f.links[0]), safari) // human
			// a scanner following both links of b@'s message at once
			f.get(click(f.deliveries[1], f.links[0]), safari)
			f.get(click(f.deliveries[1], f.links[1]), safari)
			// a click seconds after the send
			if err := f.store.DB().Exec("UPDATE deliveries SET sent_at = ? WHERE id = ?", time.Now().UTC(), f.otherDelivery).Error; err != nil {
				t.Fatal(err)
			}
			f.get(click(f.otherDelivery, f.otherLink), safari)
			f.events()

			got, err := f.store.CampaignEventStats(ctx, f.campaign)
			if err != nil {
				t.Fatal(err)
			}
			want := models.CampaignEvents{
				Opens:  models.EventCounts{Total: 4, Human: 1, Unique: 2, UniqueHuman: 1},
				Clicks: models.EventCounts{Total: 3, Human: 1, Unique: 2, UniqueHuman: 1},
			}
			if *got != want {
				t.Errorf("stats = %+v, want %+v", *got, want)
			}
			links, err := f.store.CampaignLinkStats(ctx, f.campaign)
			if err != nil {
				t.Fatal(err)
			}
			if l := links[0].EventCounts; l != (models.EventCounts{Total: 2, Human: 1, Unique: 2, UniqueHuman: 1}) {
				t.Errorf("link a = %+v", l)
			}
			other, _ := f.store.CampaignEventStats(ctx, f.other)
			if other.Clicks != (models.EventCounts{Total: 1, Unique: 1}) {
				t.Errorf("early click counted as %+v, want machine", other.Clicks)
			}
		}
	}
}

func TestTrackingCloseWritesBufferedEvents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		// Nothing is written before Close: no timer tick, no full batch.
		f := newTrackFixture(t, s, TrackingOptions{FlushEvery: time.Hour, BatchSize: 100000})
		const n = 300
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := f.deliveries[i%2]
				path := "/t/o/" + f.keys.Sign(token.Open, d)
				if i%3 == 0 {
					path = f.clickPath([]token.Kind{token.Click, token.CampaignClick}[i%2], d, f.links[i%2])
				}
				f.get(path, safari)
			}()
		}
		wg.Wait()
		var before int64
		s.DB().Raw("SELECT COUNT(*) FROM events").Scan(&before)
		if before != 0 {
			t.Fatalf("%d events written before Close; the test needs them buffered", before)
		}
		if got := len(f.events()); got != n {
			t.Errorf("after Close: %d events, want %d", got, n)
		}
		// After Close, a late request is still recorded (synchronously).
		f.get("/t/o/"+f.keys.Sign(token.Open, f.deliveries[0]), safari)
		var after int64
		s.DB().Raw("SELECT COUNT(*) FROM events").Scan(&after)
		if after != n+1 {
			t.Errorf("late event not recorded: %d events, want %d", after, n+1)
		}
	})
}

func consentCount(t *testing.T, s *models.Store, subscriber int64) int {
	t.Helper()
	cs, err := s.ConsentsBySubscriber(context.Background(), subscriber)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func subStatus(t *testing.T, s *models.Store, subscriber, list int64) string {
	t.Helper()
	subs, err := s.SubscriptionsOf(context.Background(), subscriber)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range subs {
		if sp.ListID == list {
			return sp.Status
		}
	}
	return ""
}

func TestUnsubscribePageChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newTrackFixture(t, s, TrackingOptions{})
		path := "/u/" + f.keys.Sign(token.Unsubscribe, f.deliveries[0])
		before := consentCount(t, s, f.subs[0])
		// A scanner fetches the link, twice, with and without an agent.
		for _, ua := range []string{"", safari} {
			resp, body := f.request("GET", path, "", map[string]string{"User-Agent": ua})
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s = %d", path, resp.StatusCode)
			}
			doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
			form := doc.Find(`[data-testid="unsubscribe-form"]`)
			if action, _ := form.Attr("action"); action != path || form.AttrOr("method", "") != "post" {
				t.Errorf("form action %q method %q, want post to %q", action, form.AttrOr("method", ""), path)
			}
			if v, _ := form.Find(`input[name="List-Unsubscribe"]`).Attr("value"); v != "One-Click" {
				t.Errorf("form sends List-Unsubscribe=%q", v)
			}
			if href, _ := doc.Find(`[data-testid="preferences"]`).Attr("href"); href != "/p/"+f.keys.Sign(token.Preferences, f.subs[0]) {
				t.Errorf("preferences link = %q", href)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control = %q", cc)
			}
		}
		if got := subStatus(t, s, f.subs[0], f.list); got != models.SubConfirmed {
			t.Errorf("after GET the subscription is %q, want confirmed", got)
		}
		if after := consentCount(t, s, f.subs[0]); after != before {
			t.Errorf("GET wrote %d consent rows", after-before)
		}
		if resp := f.get("/u/"+f.keys.Sign(token.Open, f.deliveries[0]), safari); resp.StatusCode != 404 {
			t.Errorf("GET with an open token = %d, want 404", resp.StatusCode)
		}
		if evs := f.events(); len(evs) != 0 {
			t.Errorf("GET recorded %+v", evs)
		}
	})
}

func TestOneClickUnsubscribe(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		f := newTrackFixture(t, s, TrackingOptions{})
		ctx := context.Background()
		path := "/u/" + f.keys.Sign(token.Unsubscribe, f.deliveries[0])
		// What a mailbox provider sends (RFC 8058 §3.2): no cookies, no CSRF token.
		mailbox := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Mail-Provider/1.0"}

		refused := []struct {
			name, path, body string
			want             int
		}{
			{"no one-click field", path, "", 400},
			{"other field", path, "unsubscribe=yes", 400},
			{"forged token", "/u/" + token.NewKeyring("x").Sign(token.Unsubscribe, f.deliveries[0]), "List-Unsubscribe=One-Click", 404},
			{"click token", "/u/" + f.keys.Sign(token.Click, f.deliveries[0], f.links[0]), "List-Unsubscribe=One-Click", 404},
		}
		for _, tt := range refused {
			if resp, _ := f.request("POST", tt.path, tt.body, mailbox); resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.want)
			}
		}
		if got := subStatus(t, s, f.subs[0], f.list); got != models.SubConfirmed {
			t.Fatalf("refused posts changed the subscription to %q", got)
		}

		before := consentCount(t, s, f.subs[0])
		resp, body := f.request("POST", path, "List-Unsubscribe=One-Click", mailbox)
		if resp.StatusCode != 200 {
			t.Fatalf("one-click POST = %d: %s", resp.StatusCode, body)
		}
		if !strings.Contains(body, `data-state="done"`) {
			t.Errorf("response is not the done page")
		}
		if got := subStatus(t, s, f.subs[0], f.list); got != models.SubUnsubscribed {
			t.Errorf("subscription = %q, want unsubscribed", got)
		}
		cs, _ := s.ConsentsBySubscriber(ctx, f.subs[0])
		if len(cs) != before+1 {
			t.Fatalf("consent rows %d → %d, want one more", before, len(cs))
		}
		last := cs[len(cs)-1]
		if last.Action != models.ConsentWithdrawn || last.Source != models.SourceOneClick || last.ListID == nil || *last.ListID != f.list ||
			last.IP != "127.0.0.1" || last.UserAgent != "Mail-Provider/1.0" {
			t.Errorf("consent row = %+v", last)
		}
		if n := consentCount(t, s, f.subs[1]); n != 1 {
			t.Errorf("b@ has %d consent rows, want only the grant", n)
		}

		// Replays (the provider retries, the reader presses the button) change nothing.
		for range 2 {
			resp, body := f.request("POST", path, "List-Unsubscribe=One-Click", mailbox)
			if resp.StatusCode != 200 || !strings.Contains(body, `data-state="already"`) {
				t.Errorf("replay = %d, want 200 already-unsubscribed page", resp.StatusCode)
			}
		}
		if n := consentCount(t, s, f.subs[0]); n != before+1 {
			t.Errorf("replays wrote %d more consent rows", n-before-1)
		}
		if resp, body := f.request("GET", path, "", nil); resp.StatusCode != 200 || !strings.Contains(body, `data-state="already"`) {
			t.Errorf("GET after unsubscribing = %d, want the already page", resp.StatusCode)
		}

		evs := f.events()
		if len(evs) != 1 || evs[0].Kind != models.EventUnsubscribe || evs[0].DeliveryID != f.deliveries[0] || evs[0].Machine {
			t.Errorf("events = %+v, want one human unsubscribe", evs)
		}

		// The next campaign to the list leaves a@ out.
		next := &models.Campaign{Name: "Summer", FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, next, []int64{f.list}); err != nil {
			t.Fatal(err)
		}
		ds := f.materialize(next.ID)
		if len(ds) != 1 || ds[0].SubscriberID == nil || *ds[0].SubscriberID != f.subs[1] {
			t.Errorf("next campaign's deliveries = %+v, want only b@ (%d)", ds, f.subs[1])
		}
	})
}

// The tracking mode setting. Off: pixels and redirects still answer (mail
// already sent keeps working) but nothing is recorded. Aggregate: events
// count per campaign and link, without delivery, subscriber, address or
// User-Agent. The tracker notices a change within SettingsEvery.
func TestTrackingModes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		f := newTrackFixture(t, s, TrackingOptions{SettingsEvery: 20 * time.Millisecond})
		hit := func() {
			t.Helper()
			if resp := f.get("/t/o/"+f.keys.Sign(token.Open, f.deliveries[0]), safari); resp.StatusCode != http.StatusOK {
				t.Fatalf("open = %d, want 200", resp.StatusCode)
			}
			for _, kind := range []token.Kind{token.Click, token.CampaignClick} {
				resp := f.get(f.clickPath(kind, f.deliveries[1], f.links[1]), safari)
				if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://shop.example/b") {
					t.Fatalf("click = %d to %q, want 302 to the link", resp.StatusCode, resp.Header.Get("Location"))
				}
			}
		}
		setMode := func(mode string) {
			t.Helper()
			if err := s.SetSetting(ctx, models.SettingTrackingMode, mode); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for f.tr.trackingMode(ctx) != mode {
				if time.Now().After(deadline) {
					t.Fatalf("the tracker did not notice mode %q", mode)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}

		setMode(models.TrackingOff)
		hit()
		setMode(models.TrackingAggregate)
		hit()
		setMode(models.TrackingFull)
		f.get("/t/o/"+f.keys.Sign(token.Open, f.deliveries[0]), safari)

		evs := f.events()
		// Off recorded nothing; aggregate three anonymous events; full one.
		anon := []models.Event{
			{CampaignID: f.campaign, Kind: models.EventOpen},
			{CampaignID: f.campaign, LinkID: f.links[1], Kind: models.EventClick},
			{CampaignID: f.campaign, LinkID: f.links[1], Kind: models.EventClick},
		}
		full := models.Event{DeliveryID: f.deliveries[0], CampaignID: f.campaign, SubscriberID: f.subs[0], Kind: models.EventOpen, IP: "127.0.0.1", UserAgent: safari}
		if len(evs) != 4 || evs[0] != anon[0] || evs[1] != anon[1] || evs[2] != anon[2] || evs[3] != full {
			t.Fatalf("events = %+v, want %+v then %+v", evs, anon, full)
		}
		stats, err := s.CampaignEventStats(ctx, f.campaign)
		if err != nil {
			t.Fatal(err)
		}
		// Anonymous events count in the totals, not as unique readers.
		want := models.CampaignEvents{
			Opens:  models.EventCounts{Total: 2, Human: 2, Unique: 1, UniqueHuman: 1},
			Clicks: models.EventCounts{Total: 2, Human: 2},
		}
		if *stats != want {
			t.Errorf("stats = %+v, want %+v", *stats, want)
		}
		links, err := s.CampaignLinkStats(ctx, f.campaign)
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 2 || links[1].Total != 2 || links[0].Total != 0 {
			t.Errorf("link stats = %+v, want 2 clicks on the second link", links)
		}
	})
}
