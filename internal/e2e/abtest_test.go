package e2e_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
)

// browserUA is a person's mail client opening images and following links.
const browserUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"

var (
	openRE  = regexp.MustCompile(`/t/o/[A-Za-z0-9_\-.~]+`)
	clickRE = regexp.MustCompile(`/t/c/[A-Za-z0-9_\-.~]+`)
)

// TestABTestEndToEnd: 200 people, 50% in a test of two subject lines on
// the capture transport. Through the real tracking endpoints, more people
// open and click B than A (and a link scanner and a privacy proxy touch
// A's messages, which must not count); after the wait the A/B job
// picks B, sends it to the 100 held back, and nobody gets two messages.
// The report shows both variants' figures and the significance verdict.
// It runs on SQLite, and on PostgreSQL when HERALD_TEST_POSTGRES is set.
func TestABTestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	t.Run("sqlite", func(t *testing.T) { abTestEndToEnd(t, "") })
	t.Run("postgres", func(t *testing.T) { abTestEndToEnd(t, e2e.PostgresURL(t)) })
}

func abTestEndToEnd(t *testing.T, dbURL string) {
	h := e2e.Start(t, e2e.Options{DatabaseURL: dbURL})
	list := h.Audience(t, 200, "ab.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	const wait = 25 // seconds
	// A partial update: only the A/B test changes.
	h.MustAPI(t, http.StatusOK, "PUT", fmt.Sprintf("/campaigns/%d", id), map[string]any{
		"ab_test": map[string]any{"share": 50, "metric": "clicks", "wait_seconds": wait, "variants": []map[string]any{
			{"label": "Plain", "subject": "Our October news"},
			{"label": "Question", "subject": "Did you see what is new?", "from_name": "Ann at Herald", "preheader": "Three things worth a look"},
		}},
	}, nil)
	h.StartCampaign(t, id)

	s := h.Store(t)
	type captured struct {
		RcptTo, Subject, HTML, Headers string
	}
	outbox := func() []captured {
		var rows []captured
		if err := s.DB().Raw("SELECT rcpt_to, subject, html, headers FROM outbox WHERE campaign_id = ? ORDER BY id", id).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		return rows
	}
	var test []captured
	e2e.Eventually(t, 60*time.Second, "the test share to be captured", func() bool {
		test = outbox()
		return len(test) >= 100
	})
	time.Sleep(time.Second)
	if test = outbox(); len(test) != 100 {
		t.Fatalf("%d messages before the winner, want the test share of 100", len(test))
	}
	byVariant := map[string][]captured{}
	for _, m := range test {
		byVariant[m.Subject] = append(byVariant[m.Subject], m)
	}
	a, b := byVariant["Our October news"], byVariant["Did you see what is new?"]
	if len(a) != 50 || len(b) != 50 {
		t.Fatalf("test share by subject: %d and %d, want 50 each (%d subjects)", len(a), len(b), len(byVariant))
	}

	// B carries its from name and preheader; A the campaign's own.
	if !strings.Contains(b[0].Headers, "Ann at Herald") || !strings.Contains(b[0].HTML, "Three things worth a look") {
		t.Errorf("B's message lacks its from name or preheader:\n%s", b[0].Headers)
	}
	if strings.Contains(a[0].Headers, "Ann at Herald") || strings.Contains(a[0].HTML, "Three things worth a look") {
		t.Errorf("A's message carries B's from name or preheader:\n%s", a[0].Headers)
	}

	hit := func(path, ua string) {
		t.Helper()
		req, _ := http.NewRequest("GET", h.URL+path, nil)
		req.Header.Set("User-Agent", ua)
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
	}
	// Machines: a mail gateway's link scanner follows the links of 30 of
	// A's messages as they land, and Apple's privacy proxy (the bare
	// "Mozilla/5.0") fetches the pixel of every one of A's. Neither is a
	// person.
	for _, m := range a[:30] {
		hit(clickRE.FindString(m.HTML), "Mozilla/5.0 (compatible; Mimecast URL protection)")
	}
	for _, m := range a {
		hit(openRE.FindString(m.HTML), "Mozilla/5.0")
	}
	time.Sleep(11 * time.Second) // past the tracker's scanner delay
	// People: 25 read B and 20 of them click; 15 read A and 4 click.
	act := func(ms []captured, opens, clicks int) {
		for i, m := range ms[:opens] {
			o, k := openRE.FindString(m.HTML), clickRE.FindString(m.HTML)
			if o == "" || k == "" {
				t.Fatalf("message to %s has no pixel or tracked link:\n%s", m.RcptTo, m.HTML)
			}
			hit(o, browserUA)
			if i < clicks {
				hit(k, browserUA)
			}
		}
	}
	act(b, 25, 20)
	act(a[30:], 15, 4)

	st := h.WaitCampaign(t, id, 90*time.Second, "finished")
	if st.Counters["sent"] != 200 {
		t.Errorf("sent = %d, want 200 (%v)", st.Counters["sent"], st.Counters)
	}
	all := outbox()
	seen := map[string]int{}
	for _, m := range all {
		seen[m.RcptTo]++
	}
	for rcpt, n := range seen {
		if n != 1 {
			t.Errorf("%s got %d messages", rcpt, n)
		}
	}
	if len(all) != 200 || len(seen) != 200 {
		t.Fatalf("%d messages to %d people, want 200 to 200", len(all), len(seen))
	}
	for _, m := range all[100:] {
		if m.Subject != "Did you see what is new?" {
			t.Errorf("remainder message to %s has subject %q, want B's", m.RcptTo, m.Subject)
		}
	}

	var api struct {
		Data struct {
			ABTest struct {
				Winner    *int   `json:"winner"`
				DecidedBy string `json:"decided_by"`
				Analysis  struct {
					Best        int  `json:"best"`
					Significant bool `json:"significant"`
					Variants    []struct {
						Label  string `json:"label"`
						Sent   int64  `json:"sent"`
						Opens  int64  `json:"opens"`
						Clicks int64  `json:"clicks"`
					} `json:"variants"`
				} `json:"analysis"`
			} `json:"ab_test"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", id), nil, &api)
	ab := api.Data.ABTest
	if ab.Winner == nil || *ab.Winner != 2 || ab.DecidedBy != "A/B test job" || !ab.Analysis.Significant {
		t.Errorf("ab_test = %+v, want variant 2 picked by the job, significant", ab)
	}
	if v := ab.Analysis.Variants; len(v) != 2 || v[0].Sent != 50 || v[0].Clicks != 4 || v[0].Opens != 15 ||
		v[1].Sent != 50 || v[1].Clicks != 20 || v[1].Opens != 25 {
		t.Errorf("figures = %+v, want A 50 sent, 15 opens, 4 clicks (machines left out); B 50, 25, 20", v)
	}
	t.Logf("A/B figures: %+v", ab.Analysis.Variants)

	code, page := h.Dashboard(t).Get(t, fmt.Sprintf("/campaigns/%d/report", id))
	if code != 200 {
		t.Fatalf("report = %d", code)
	}
	for _, want := range []string{`data-testid="ab-test"`, `data-variant="Plain"`, `data-variant="Question"`, "4 of 50", "20 of 50",
		"and the difference is significant", `data-testid="ab-winner"`, "sent to the rest of the audience", "z = "} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if i := strings.Index(page, `data-testid="ab-verdict"`); i >= 0 {
		t.Logf("verdict: %s", strings.Join(strings.Fields(stripTags(page[i:min(len(page), i+600)])), " "))
	}
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

func stripTags(s string) string { return tagRE.ReplaceAllString(s, " ") }
