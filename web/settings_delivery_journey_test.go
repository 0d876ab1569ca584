package web

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
)

// TestJourneyDeliverySettings drives Chromium against the built binary
// started with no transport in the environment: on Settings → Delivery
// the admin chooses the relay transport and types a relay URL with a
// wrong password, and Test connection says in plain words that the relay
// refused it; with the right password saved, the page shows it masked,
// Test connection (with the masked password) works against the local
// go-smtp relay (STARTTLS, AUTH), and a campaign started right after,
// without a restart, arrives at that relay over TLS.
func TestJourneyDeliverySettings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	ctx := browsertest.New(t, 150*time.Second)
	dns := e2e.StartDNS(t)
	dns.AddTXT(t, "relay1._domainkey.news.example", "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest")
	port := e2e.FreePort(t)
	srvTLS, caFile := e2e.ThrowawayCA(t, "127.0.0.2")
	relay := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{TLS: srvTLS, Domain: "relay.test",
		Users: map[string]string{"herald": "right-pass"}})
	// HERALD_TRANSPORT= (empty, after the harness's capture): nothing in
	// the environment sets the transport, so the page may.
	h := e2e.Start(t, e2e.Options{DNS: dns, Env: []string{"HERALD_TRANSPORT=", "SSL_CERT_FILE=" + caFile}})
	relayURL := func(pw string) string {
		return fmt.Sprintf("smtp://herald:%s@127.0.0.2:%d?connections=2&dkim=relay&dkim_selectors=relay1", pw, port)
	}
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)
	value := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}

	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), h.Admin),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), h.Password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	step("open Settings → Delivery from the tabs",
		chromedp.Navigate(h.URL+"/settings"),
		chromedp.Click(chromedp.CSS(`[data-testid="subnav"] a[href="/settings/delivery"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="delivery-form"]`)),
	)
	if got := text(`[data-testid="in-effect"]`); got != "capture" {
		t.Errorf("transport in effect at first = %q, want capture", got)
	}
	step("a wrong password fails the test in plain words",
		chromedp.Click(chromedp.CSS(`input[name="transport"][value="relay"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="relay"]`), relayURL("wrong-pass")),
		chromedp.Click(chromedp.CSS(`[data-testid="test-relay"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#relay-test [data-testid="conn-failed"]`)),
	)
	if got := text(`#relay-test [data-testid="conn-text"]`); !strings.Contains(got, "refused the user name or password") || !strings.Contains(got, "535") {
		t.Errorf("wrong password test says %q, want the relay's refusal of the credentials with its 535", got)
	}
	browsertest.Screenshot(t, ctx, shots, "delivery-relay-test-failed")
	step("save the right relay",
		chromedp.SetValue(chromedp.CSS(`[data-testid="relay"]`), relayURL("right-pass")),
		chromedp.Click(chromedp.CSS(`[data-testid="save-delivery"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"], .flash`)),
	)
	if got := text(`[data-testid="in-effect"]`); got != "relay" {
		t.Errorf("transport in effect after saving = %q, want relay (no restart)", got)
	}
	shown := value(`[data-testid="relay"]`)
	if strings.Contains(shown, "right-pass") || !strings.Contains(shown, "herald:xxxxx@127.0.0.2") {
		t.Errorf("relay shown back as %q, want the password masked", shown)
	}
	step("test the saved relay (masked password kept)",
		chromedp.Click(chromedp.CSS(`[data-testid="test-relay"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#relay-test [data-testid="conn-ok"]`)),
	)
	if got := text(`#relay-test [data-testid="conn-text"]`); !strings.Contains(got, "TLS") || !strings.Contains(got, "signed in as herald") {
		t.Errorf("relay test says %q, want TLS and signed in", got)
	}
	browsertest.Widths(t, ctx, "delivery-relay-test-ok")

	list := h.List(t, "Readers", "ann@alpha.test", "bob@beta.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")
	if st.Counters["sent"] != 2 {
		t.Errorf("counters = %v, want 2 sent through the relay", st.Counters)
	}
	msgs := relay.Messages()
	if len(msgs) != 2 {
		t.Fatalf("the relay took %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if !m.TLS {
			t.Errorf("message to %v went in plain text, want STARTTLS", m.To)
		}
	}
	var summaries []string
	h.Store(t).DB().Raw("SELECT summary FROM audit_log WHERE action = 'settings.update' AND object_id = 'delivery.relay'").Scan(&summaries)
	if len(summaries) != 1 || strings.Contains(summaries[0], "right-pass") || !strings.Contains(summaries[0], "xxxxx") {
		t.Errorf("audit of the relay change = %q, want one entry with the password masked", summaries)
	}
}

// TestDeliverySettingsEnvironmentWins: with HERALD_RELAY and
// HERALD_TRANSPORT in the environment the page shows them read-only,
// says where they come from, masks the password, and a save does not
// replace them; the test buttons name a closed port and a closed mailbox
// port in plain words; a viewer cannot open the page.
func TestDeliverySettingsEnvironmentWins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	closed := e2e.FreePort(t)
	envRelay := fmt.Sprintf("smtp://env-user:env-secret@127.0.0.1:%d", closed)
	h := e2e.Start(t, e2e.Options{Transport: "relay", Env: []string{"HERALD_RELAY=" + envRelay}})
	d := h.Dashboard(t)
	code, page := d.Get(t, "/settings/delivery")
	if code != 200 {
		t.Fatalf("GET /settings/delivery = %d", code)
	}
	for _, want := range []string{"Set by HERALD_RELAY in the environment", "Set by HERALD_TRANSPORT in the environment", "env-user:xxxxx@127.0.0.1"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "env-secret") {
		t.Error("the page shows the environment's relay password")
	}
	code, _ = d.Post(t, "/settings/delivery", url.Values{"transport": {"capture"}, "relay": {"smtp://other:pw@127.0.0.1:2525"}})
	if code != 303 {
		t.Fatalf("save = %d, want 303", code)
	}
	_, page = d.Get(t, "/settings/delivery")
	if !strings.Contains(page, `data-testid="in-effect">relay<`) || !strings.Contains(page, "env-user:xxxxx@127.0.0.1") {
		t.Errorf("after a save the environment's relay must stay in effect; page:\n%s", page)
	}
	// The test button with the environment's relay: a closed port.
	_, res := d.Post(t, "/settings/delivery/test-relay", url.Values{})
	if !strings.Contains(res, "connection refused") || !strings.Contains(res, "Check the host and port") {
		t.Errorf("closed-port relay test = %s", res)
	}
	// A mailbox on a closed port.
	_, res = d.Post(t, "/settings/delivery/test-mailbox", url.Values{"bounce_mailbox": {fmt.Sprintf("imap://b:pw@127.0.0.1:%d/INBOX", closed)}})
	if !strings.Contains(res, "Nothing accepts connections at 127.0.0.1:") {
		t.Errorf("closed-port mailbox test = %s", res)
	}
	// A relay URL the parser refuses shows the parser's error.
	code, res = d.Post(t, "/settings/delivery/test-mailbox", url.Values{"bounce_mailbox": {"pop3://x@y"}})
	if code != 200 || !strings.Contains(res, "imaps://user:password@host:993/INBOX") {
		t.Errorf("bad mailbox URL = %d %s", code, res)
	}

}

// TestDeliverySettingsBounceMailbox: a bounce mailbox saved on Settings →
// Delivery of the running binary (nothing about it in the environment)
// passes Test mailbox against a real IMAP server (go-imap's, TLS verified
// through SSL_CERT_FILE), is polled without a restart — the message
// waiting there that is no bounce is handled and deleted — and a wrong
// password fails the test in plain words.
func TestDeliverySettingsBounceMailbox(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	srvTLS, caFile := e2e.ThrowawayCA(t, "127.0.0.2")
	const user, pass = "bounces@example.com", "mbox pass"
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	msg := "From: someone@example.org\r\nTo: bounces@example.com\r\nSubject: hello\r\n\r\nNot a bounce.\r\n"
	if _, err := u.Append("INBOX", literal{strings.NewReader(msg)}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
	})
	ln, err := tls.Listen("tcp", "127.0.0.2:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	mailbox := func(pw string) string {
		return "imaps://" + url.UserPassword(user, pw).String() + "@" + ln.Addr().String() + "/INBOX"
	}

	h := e2e.Start(t, e2e.Options{Env: []string{"SSL_CERT_FILE=" + caFile}})
	d := h.Dashboard(t)
	_, res := d.Post(t, "/settings/delivery/test-mailbox", url.Values{"bounce_mailbox": {mailbox("wrong")}})
	if !strings.Contains(res, "refused to log in bounces@example.com") {
		t.Errorf("wrong password test = %s", res)
	}
	_, res = d.Post(t, "/settings/delivery/test-mailbox", url.Values{"bounce_mailbox": {mailbox(pass)}})
	if !strings.Contains(res, `data-testid="conn-ok"`) || !strings.Contains(res, "holds 1 message(s)") {
		t.Errorf("right password test = %s", res)
	}
	if code, _ := d.Post(t, "/settings/delivery", url.Values{"bounce_mailbox": {mailbox(pass)}, "bounce_interval": {"1s"}}); code != 303 {
		t.Fatalf("save = %d", code)
	}
	e2e.Eventually(t, 20*time.Second, "the saved mailbox to be polled and its message handled", func() bool {
		data, err := u.Status("INBOX", &imap.StatusOptions{NumMessages: true})
		return err == nil && data.NumMessages != nil && *data.NumMessages == 0
	})
}

// literal is a message for imapmemserver's Append.
type literal struct{ *strings.Reader }
