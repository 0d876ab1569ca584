package web

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/spamdtest"
	"github.com/herald-mail/herald/mailer/defaults"
)

// TestJourneySpamScore drives Chromium against the built binary started
// with HERALD_SPAMD pointing at a real spamd: the checklist of a campaign
// in the default newsletter, tracked and DKIM-signed, shows a score under
// 1.0 and the rules that hit; an admin sets the limit to 0.5 with Block,
// and a short campaign whose only content is a picture then shows the
// image-only rule with its hint, is marked as blocking, and cannot start.
func TestJourneySpamScore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary and spamd")
	}
	spamd := spamdtest.Start(t)
	ctx := browsertest.New(t, 180*time.Second)
	dns := e2e.StartDNS(t)
	h := e2e.Start(t, e2e.Options{DNS: dns, Env: []string{"HERALD_SPAMD=" + spamd}})
	h.SendingDomain(t, dns, "books.example")
	list := h.List(t, "Readers", "ada@example.org")
	newsHTML := strings.Replace(defaults.NewsletterHTML, defaults.Placeholder,
		"Our autumn reading list is out, with twelve new novels and a talk by their translators on the first Friday of October.", 1)
	news := h.NewCampaign(t, e2e.Campaign{Name: "Autumn news", Subject: defaults.NewsletterSubject, FromEmail: "news@books.example",
		HTML: newsHTML, Lists: []int64{list}})
	picture := h.NewCampaign(t, e2e.Campaign{Name: "Picture only", Subject: "Look", FromEmail: "news@books.example",
		HTML: `<html><body><p><a href="https://books.example/sale"><img src="https://books.example/sale.jpg" width="600" height="800" alt=""></a></p>
<p><a href="{{.UnsubscribeURL}}">Unsubscribe</a> · {{.Org.PostalAddress}}</p></body></html>`, Lists: []int64{list}})

	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)
	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), h.Admin),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), h.Password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	step("the default newsletter's checklist shows its score and rules",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/%d", h.URL, news)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="check-campaign.spam_score"] [data-testid="spam-rules"]`)),
	)
	score, err := strconv.ParseFloat(strings.TrimPrefix(text(`[data-testid="spam-score-value"]`), "Score "), 64)
	if err != nil {
		t.Fatalf("score badge %q: %v", text(`[data-testid="spam-score-value"]`), err)
	}
	t.Logf("default newsletter, tracked and signed, through the binary: score %.1f; rules: %s", score,
		strings.Join(strings.Fields(text(`[data-testid="spam-rules"] tbody`)), " "))
	if score >= 1.0 {
		t.Errorf("the default newsletter scores %.1f, want under 1.0", score)
	}
	if got := text(`[data-testid="check-campaign.spam_score"]`); !strings.HasPrefix(strings.TrimSpace(got), "✓") {
		t.Errorf("the score check is not met: %q", got)
	}
	browsertest.Widths(t, ctx, "spam-score-ok")

	step("a template is scored from its editor",
		chromedp.Navigate(h.URL+"/templates/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="score-template"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="template-form"] input[name="name"]`), "Autumn"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="subject"]`), "Autumn news"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="template-form"] textarea[name="html"]`), newsHTML),
		chromedp.Click(chromedp.CSS(`[data-testid="score-template"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="template-score"] [data-testid="spam-score-value"]`)),
	)
	tscore, err := strconv.ParseFloat(strings.TrimPrefix(text(`[data-testid="template-score"] [data-testid="spam-score-value"]`), "Score "), 64)
	if err != nil || tscore >= 1.0 {
		t.Errorf("the template preview's score = %v (%v), want under 1.0", tscore, err)
	}
	if got := text(`[data-testid="score-detail"]`); !strings.Contains(got, "news@books.example") {
		t.Errorf("the template score says %q, want the sender it was scored as", got)
	}
	t.Logf("template preview: %s", text(`[data-testid="template-score"]`))
	browsertest.Widths(t, ctx, "spam-score-template")

	step("the admin makes a score of 0.5 block sending",
		chromedp.Navigate(h.URL+"/settings"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="content-scoring"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="spam-limit"]`), "0.5"),
		chromedp.Click(chromedp.CSS(`[data-testid="spam-action-block"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="settings-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="content-scoring"]`)),
	)
	browsertest.Widths(t, ctx, "spam-score-settings")

	step("a picture-only campaign is scored as image-only mail and blocked",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/%d", h.URL, picture)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="check-campaign.spam_score"][data-state="bad"]`)),
	)
	rules := text(`[data-testid="spam-rules"] tbody`)
	if !strings.Contains(rules, "HTML_IMAGE_ONLY_") || !strings.Contains(rules, "few words") {
		t.Errorf("the rules read %q, want an HTML_IMAGE_ONLY rule with its hint", rules)
	}
	t.Logf("picture-only campaign: %s; rules: %s", text(`[data-testid="spam-score-value"]`), strings.Join(strings.Fields(rules), " "))
	if got := text(`[data-testid="check-campaign.spam_score"]`); !strings.Contains(got, "blocks sending") || !strings.Contains(got, "under 0.5") {
		t.Errorf("the score check reads %q, want it to block under the 0.5 limit", got)
	}
	browsertest.Widths(t, ctx, "spam-score-blocked")

	var out map[string]any
	if code := h.API(t, http.MethodPost, fmt.Sprintf("/campaigns/%d/start", picture), nil, &out); code == http.StatusOK {
		t.Errorf("the blocked campaign started")
	} else if !strings.Contains(fmt.Sprint(out), "SpamAssassin") {
		t.Errorf("start refused with %d %v, want the content score named", code, out)
	}
}
