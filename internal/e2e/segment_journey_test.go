package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestSegmentCampaignJourney is issue 20's segment journey on the built
// binary with direct delivery to two providers (go-smtp receivers on
// 127.0.0.2 and 127.0.0.3, found through the local DNS).
//
// 24 readers, 12 in Paris and 12 in Lyon, get a first campaign. Through
// the binary's real tracking endpoint, six Parisians and two Lyonnais open
// it in a mail client; two more Parisians' copies are fetched by machines
// (an HTTP library, Apple's privacy proxy), which must not count. In
// Chromium a marketer (made with `herald user create`) signs in, builds a segment "city equals paris" (the
// count reads 12), adds "opened in the last 30 days" (the count falls to
// 6), saves it, and makes a campaign to it minus the Staff list (p2 and p4
// among the openers, and a Lyonnais): the count falls to 4. They send it,
// watch it finish and open the report. The receivers got the second
// campaign at exactly p1, p3, p5 and p6, once each. It runs on SQLite, and
// on PostgreSQL when HERALD_TEST_POSTGRES is set.
func TestSegmentCampaignJourney(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary and a browser")
	}
	t.Run("sqlite", func(t *testing.T) { segmentCampaignJourney(t, "") })
	t.Run("postgres", func(t *testing.T) { segmentCampaignJourney(t, e2e.PostgresURL(t)) })
}

func segmentCampaignJourney(t *testing.T, dbURL string) {
	ctx := browsertest.New(t, 3*time.Minute)
	shots := filepath.Join(os.TempDir(), "herald-screenshots", "segment-journey-e2e", filepath.Base(t.Name()))

	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	alpha := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	beta := e2e.StartReceiver(t, "127.0.0.3", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	dns.Provider(t, "mx.beta.test", "127.0.0.3", "beta.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port, DatabaseURL: dbURL})
	h.SendingDomain(t, dns, "news.example")

	// The readers: p1…p12 in Paris, l1…l12 in Lyon, on both providers.
	var news, staff struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusCreated, "POST", "/lists", map[string]any{"name": "Newsletter", "optin": "single"}, &news)
	h.MustAPI(t, http.StatusCreated, "POST", "/lists", map[string]any{"name": "Staff", "optin": "single"}, &staff)
	addr := func(who string) string {
		dom := "alpha.test"
		if n := who[len(who)-1]; (n-'0')%2 == 0 {
			dom = "beta.test"
		}
		return who + "@" + dom
	}
	var everyone []string
	for _, city := range []string{"Paris", "Lyon"} {
		for i := 1; i <= 12; i++ {
			who := fmt.Sprintf("%c%d", strings.ToLower(city)[0], i)
			lists := []int64{news.Data.ID}
			if who == "p2" || who == "p4" || who == "l1" {
				lists = append(lists, staff.Data.ID)
			}
			h.MustAPI(t, http.StatusCreated, "POST", "/subscribers", map[string]any{"email": addr(who), "name": "Reader " + who,
				"lists": lists, "attributes": map[string]any{"city": city}}, nil)
			everyone = append(everyone, addr(who))
		}
	}

	// A first campaign to everyone, delivered by SMTP to the receivers.
	warm := h.NewCampaign(t, e2e.Campaign{Name: "October", FromEmail: "hello@news.example", Lists: []int64{news.Data.ID}})
	h.StartCampaign(t, warm)
	if st := h.WaitCampaign(t, warm, 90*time.Second, "finished"); st.Counters["sent"] != 24 {
		t.Fatalf("first campaign: counters %v, want 24 sent", st.Counters)
	}
	received := func() []e2e.Message { return append(alpha.Messages(), beta.Messages()...) }
	first := received()
	if got := recipients(first); !slices.Equal(got, sorted(everyone)) {
		t.Fatalf("the first campaign reached %v, want all 24", got)
	}
	pixel := map[string]string{}
	for _, m := range first {
		html := htmlPart(t, m.Data)
		p := openRE.FindString(html)
		if p == "" {
			t.Fatalf("message to %v has no open pixel:\n%s", m.To, html)
		}
		pixel[strings.ToLower(m.To[0])] = p
	}
	open := func(who, ua string) {
		t.Helper()
		req, _ := http.NewRequest("GET", h.URL+pixel[addr(who)], nil)
		req.Header.Set("User-Agent", ua)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("open pixel of %s: %v", who, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("open pixel of %s = %d", who, resp.StatusCode)
		}
	}
	for _, who := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "l1", "l2"} {
		open(who, browserUA)
	}
	open("p7", "Go-http-client/1.1") // a machine
	open("p8", "Mozilla/5.0")        // Apple's privacy proxy
	s := h.Store(t)
	e2e.Eventually(t, 20*time.Second, "the tracker to write the ten opens", func() bool {
		var n int64
		s.DB().Raw("SELECT COUNT(*) FROM events WHERE kind = 'open' AND campaign_id = ? AND subscriber_id IS NOT NULL", warm).Scan(&n)
		return n == 10
	})

	step, text := browsertest.Steps(t, ctx, shots)
	setSelect := func(sel, v string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change', {bubbles: true})); return e.value === %q; })()`, sel, v, v)
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			// htmx wires a swapped-in element up after it settles; a
			// change before that would go unheard (a person is slower).
			for i := 0; ; i++ {
				idle, err := chromedp.Evaluate[bool](`!document.querySelector('.htmx-added, .htmx-settling, .htmx-request, .htmx-swapping')`)(ctx, tg)
				if err != nil {
					return chromedp.Void{}, err
				}
				if idle && i > 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			ok, err := chromedp.Evaluate[bool](js)(ctx, tg)
			if err == nil && !ok {
				err = fmt.Errorf("%s has no option %q", sel, v)
			}
			return chromedp.Void{}, err
		}
	}
	shows := func(testid, n string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="` + testid + `" and text()="` + n + `"]`))
	}
	// A marketer's account, made as an operator makes one.
	if out, err := h.Run("user", "create", "--email", "marketer@herald.test", "--role", "marketer", "--password", "a long enough password"); err != nil {
		t.Fatalf("herald user create: %v\n%s", err, out)
	}
	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "marketer@herald.test"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.shell`)),
	)
	step("Subscribers → Segments → an attribute condition",
		chromedp.Navigate(h.URL+"/subscribers"),
		chromedp.Click(chromedp.Search(`//nav[@data-testid="subnav"]//a[text()="Segments"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="empty"] a[role="button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="segment-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Paris readers"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="condition-0"] [data-testid="c-key"]`), "city"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="condition-0"] [data-testid="c-value"]`), "paris"),
		shows("segment-count", "12"),
	)
	if got := text(`[data-testid="segment-preview"]`); !strings.Contains(got, addr("p1")) || strings.Contains(got, addr("l1")) {
		t.Errorf("preview of city = paris: %q", got)
	}
	step("add an engagement condition",
		chromedp.Click(chromedp.CSS(`[data-testid="add-condition-0"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="condition-1"]`)),
		setSelect(`[data-testid="condition-1"] [data-testid="c-field"]`, "opened"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="condition-1"] [data-testid="c-days"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="condition-1"] [data-testid="c-days"]`), "30"),
		shows("segment-count", "6"), // p1…p6: p7 and p8 were opened by machines, l1 and l2 are in Lyon
	)
	browsertest.Screenshot(t, ctx, shots, "segment-builder")
	step("save the segment",
		chromedp.Click(chromedp.CSS(`[data-testid="save-segment"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
		shows("segment-count", "6"),
	)
	var segs struct {
		Data []struct {
			ID         int64             `json:"id"`
			Name       string            `json:"name"`
			Conditions models.Conditions `json:"conditions"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", "/segments", nil, &segs)
	if len(segs.Data) != 1 || segs.Data[0].Name != "Paris readers" || segs.Data[0].Conditions.Count() != 2 {
		t.Fatalf("segments through the API: %+v", segs.Data)
	}
	if g := segs.Data[0].Conditions.Groups; len(g) != 1 || g[0].Conditions[1].Field != "opened" || g[0].Conditions[1].Days != 30 {
		t.Errorf("saved conditions: %+v", segs.Data[0].Conditions)
	}
	var wc struct {
		Data struct {
			TemplateID *int64 `json:"template_id"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", warm), nil, &wc)
	if wc.Data.TemplateID == nil {
		t.Fatal("the first campaign has no template")
	}

	step("a campaign to the segment, minus the Staff list",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/new?segment=%d", h.URL, segs.Data[0].ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-form"]`)),
		shows("recipient-count", "6"),
		chromedp.Click(chromedp.CSS(`[data-testid="audience"] summary`)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="exclude_lists"][value="%d"]`, staff.Data.ID))),
		shows("recipient-count", "4"),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "November for Paris"),
		setSelect(`select[name="template_id"]`, fmt.Sprint(*wc.Data.TemplateID)),
		chromedp.SendKeys(chromedp.CSS(`input[name="subject"]`), "November in Paris"),
		chromedp.SendKeys(chromedp.CSS(`input[name="from_email"]`), "hello@news.example"),
		chromedp.Click(chromedp.CSS(`[data-testid="save-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-status"]`)),
	)
	if got := text(`[data-testid="campaign-exclusions"]`); got != "list Staff" {
		t.Errorf("campaign page exclusions = %q", got)
	}
	if got := text(`[data-testid="check-campaign.recipients"]`); !strings.Contains(got, "4 recipients") {
		t.Errorf("checklist recipients = %q", got)
	}
	step("send it",
		chromedp.Click(chromedp.CSS(`[data-testid="send-now"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="start-confirm"]`)),
	)
	if got := text(`[data-testid="confirm-recipients"]`); !strings.HasPrefix(got, "4 ") {
		t.Errorf("confirmation recipients = %q", got)
	}
	step("confirm, watch it finish, read the report",
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-send"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="progress"][data-percent="100"]`)),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report-link"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="report-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report"]`)),
	)
	if got := text(`[data-testid="delivered"]`); got != "4" {
		t.Errorf("report: delivered = %q, want 4", got)
	}
	browsertest.Screenshot(t, ctx, shots, "segment-campaign-report")

	// What the providers received for the second campaign: exactly the
	// Parisians who opened as people, less the staff, once each.
	var second []e2e.Message
	for _, m := range received() {
		if msg, err := mail.ReadMessage(bytes.NewReader(m.Data)); err == nil && decodeHeader(msg.Header.Get("Subject")) == "November in Paris" {
			second = append(second, m)
		}
	}
	want := sorted([]string{addr("p1"), addr("p3"), addr("p5"), addr("p6")})
	if got := recipients(second); !slices.Equal(got, want) {
		t.Errorf("the receivers got the segment campaign at %v, want %v (p2 and p4 are staff, p7 and p8 were opened by machines, l1 and l2 live in Lyon)", got, want)
	}
	if n := len(received()); n != 24+4 {
		t.Errorf("the receivers got %d messages in all, want 28 (24 + 4)", n)
	}
	t.Logf("segment campaign delivered to %v", recipients(second))
}

// recipients returns the messages' recipients, lower-cased and sorted (a
// recipient twice appears twice).
func recipients(ms []e2e.Message) []string {
	var to []string
	for _, m := range ms {
		for _, r := range m.To {
			to = append(to, strings.ToLower(r))
		}
	}
	return sorted(to)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func decodeHeader(v string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

// htmlPart returns the decoded text/html part of a raw message.
func htmlPart(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	html, ok := findHTML(msg.Header, msg.Body)
	if !ok {
		t.Fatalf("message has no text/html part:\n%s", raw)
	}
	return html
}

// header is a message's or a part's header.
type header interface{ Get(string) string }

func findHTML(h header, body io.Reader) (string, bool) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return "", false
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return "", false
			}
			if s, ok := findHTML(p.Header, p); ok {
				return s, true
			}
		}
	}
	if mt != "text/html" {
		return "", false
	}
	var r io.Reader = body
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(r)
	return string(b), err == nil
}
