package web

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
)

// An admin adds two seed mailboxes in the browser (a wrong URL first,
// refused beside its field), starts a placement test of a campaign, and
// watches its page fill in: the copy for one seed in the inbox, for the
// other in Spam, with the receiver's verdicts; then sets a placement gate
// on the campaign (the server's refusal of 101% is TestPlacementGate's). The seeds live on a real
// Dovecot; the built binary sends by the direct transport to a receiver
// that files mail for junk.test into Spam.
func TestJourneyPlacementTest(t *testing.T) {
	ctx := browsertest.New(t, 180*time.Second)
	imap := e2e.StartDovecot(t, map[string]string{"a": "pw-a", "b": "pw-b"})
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	users := map[string]string{"seed@inbox.test": "a", "seed@junk.test": "b"}
	e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Deliver: func(m e2e.Message) {
		for _, to := range m.To {
			folder, ar := "INBOX", "mx.inbox.test; spf=pass smtp.mailfrom=news@sender.example; dkim=pass header.d=sender.example; dmarc=pass header.from=sender.example"
			if strings.HasSuffix(to, "@junk.test") {
				folder, ar = "Spam", "mx.junk.test; spf=fail smtp.mailfrom=news@sender.example; dkim=none; dmarc=fail header.from=sender.example"
			}
			imap.Deliver(t, users[to], folder, append([]byte("Authentication-Results: "+ar+"\r\n"), m.Data...))
		}
	}})
	dns.Provider(t, "mx.seeds.test", "127.0.0.2", "inbox.test", "junk.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port,
		Env: []string{"SSL_CERT_FILE=" + imap.CAFile, "HERALD_PLACEMENT_POLL=300ms"}})
	list := h.List(t, "Readers", "ann@rcpt.test")
	h.NewCampaign(t, e2e.Campaign{Name: "Autumn news", FromEmail: "news@sender.example", Lists: []int64{list}})
	step, text := browsertest.Steps(t, ctx, browsertest.ShotDir())

	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), h.Admin),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), h.Password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	step("open placement from the deliverability tabs",
		chromedp.Navigate(h.URL+"/deliverability"),
		chromedp.Click(chromedp.CSS(`[data-testid="subnav"] a[href="/deliverability/placement"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="no-seeds"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="no-seeds"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="seed-form"]`)),
	)
	addSeed := func(addr, provider, url string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="seed-form"]`)),
			chromedp.SetValue(chromedp.CSS(`[data-testid="seed-address"]`), addr),
			chromedp.SetValue(chromedp.CSS(`[data-testid="seed-provider"]`), provider),
			chromedp.SetValue(chromedp.CSS(`[data-testid="seed-imap"]`), url),
			chromedp.Click(chromedp.CSS(`[data-testid="seed-submit"]`)),
		}
	}
	step("a URL without a password is refused",
		append(addSeed("seed@inbox.test", "Inbox Mail", "imap://"+imap.Addr), chromedp.WaitVisible(chromedp.CSS(`[data-testid="seed-imap"][aria-invalid="true"]`)))...)
	if got := text(`[data-testid="seed-form"]`); !strings.Contains(got, "needs the mailbox's user and password") {
		t.Errorf("refusal = %q", got)
	}
	// Each step waits for its own row: the previous page's flash is still
	// visible until the new page has loaded.
	seedRow := func(addr string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.Search(`//*[@data-testid="seeds"]//*[contains(text(), "` + addr + `")]`))
	}
	step("add the inbox seed", append(addSeed("seed@inbox.test", "Inbox Mail", "imap://a:pw-a@"+imap.Addr), seedRow("seed@inbox.test"))...)
	step("add the junk seed", append(addSeed("seed@junk.test", "Junk Mail", "imap://b:pw-b@"+imap.Addr), seedRow("seed@junk.test"))...)
	seeds := text(`[data-testid="seeds"]`)
	if !strings.Contains(seeds, "seed@junk.test") || !strings.Contains(seeds, "imap://a:xxxxx@") || strings.Contains(seeds, "pw-a") {
		t.Errorf("seeds table = %q, want both seeds with their passwords hidden", seeds)
	}
	browsertest.Widths(t, ctx, "placement-seeds")

	step("start a placement test",
		chromedp.Navigate(h.URL+"/deliverability/placement"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="placement-form"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="placement-start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="placement-results"]`)),
	)
	// The page polls its results while the test runs.
	step("the results fill in", chromedp.WaitVisible(chromedp.CSS(`[data-testid="placement-results"][data-status="done"]`)))
	if got := text(`[data-testid="placement-summary"]`); !strings.Contains(got, "50%") {
		t.Errorf("summary = %q, want 50%%", got)
	}
	inbox := text(`tr[data-testid="placement-seed@inbox.test"]`)
	junk := text(`tr[data-testid="placement-seed@junk.test"]`)
	if !strings.Contains(inbox, "Inbox") || !strings.Contains(junk, "Spam") || !strings.Contains(junk, "fail") || !strings.Contains(inbox, "pass") {
		t.Errorf("rows: inbox %q, junk %q; want Inbox with pass, Spam with fail", inbox, junk)
	}
	browsertest.Widths(t, ctx, "placement-result")

	step("the test is listed",
		chromedp.Navigate(h.URL+"/deliverability/placement"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="placement-tests"]`)),
	)
	if got := text(`[data-testid="placement-tests"]`); !strings.Contains(got, "Autumn news") || !strings.Contains(got, "done") {
		t.Errorf("tests table = %q", got)
	}
	step("set a placement gate",
		chromedp.SetValue(chromedp.CSS(`[data-testid="gate-min"]`), "80"),
		chromedp.Click(chromedp.CSS(`[data-testid="gate-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="placement-gates"]`)),
	)
	if got := text(`[data-testid="placement-gates"]`); !strings.Contains(got, "Autumn news") || !strings.Contains(got, "80%") || !strings.Contains(got, "armed") {
		t.Errorf("gates table = %q", got)
	}
	browsertest.Widths(t, ctx, "placement-tests")
}
