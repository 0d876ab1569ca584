package e2e_test

import (
	"bytes"
	"fmt"
	"net/mail"
	netsmtp "net/smtp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
)

// TestBounceReasons runs the built binary: a campaign goes out over direct
// delivery (one address refused at RCPT TO), two delivery notices come back to Herald's inbound SMTP server
// at the VERP addresses the messages carried, and the Bounces page shows
// for each address the verdict and the row of the precedence table that
// decided. A carrier's "550 : User unknown", which names no address and no
// stage, must not suppress the subscriber; a refusal at RCPT TO must.
// Then `herald bounce parse --explain` on the same notices, and on a
// truncated file, from the same binary.
func TestBounceReasons(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	// cy is refused at RCPT TO during delivery: a bounce row written by
	// the mailer itself, with the classifier's reason.
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Rcpt: func(rcpt string) *smtp.SMTPError {
		if rcpt == "cy@alpha.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<cy@alpha.test>: no such mailbox here"}
		}
		return nil
	}})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	inbound := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t))

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port, Env: []string{"HERALD_INBOUND_LISTEN=" + inbound}})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Bounce readers", "ann@alpha.test", "bob@alpha.test", "cy@alpha.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	h.WaitCampaign(t, id, 60*time.Second, "finished")
	if rcv.Count() != 2 {
		t.Fatalf("receiver got %d messages, want 2", rcv.Count())
	}

	notices := map[string]string{}
	for _, m := range rcv.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		rcpt, verp, mid := m.To[0], m.From, msg.Header.Get("Message-Id")
		var notice string
		switch rcpt {
		case "ann@alpha.test":
			notice = fmt.Sprintf("From: MAILER-DAEMON@relay.alpha.test\r\nTo: %s\r\nSubject: Failure Notice\r\n\r\n"+
				"We were unable to deliver your message to the following addresses.\r\n\r\n<%s>:\r\n550 : User unknown\r\n\r\n"+
				"--- Below this line is a copy of the message.\r\n\r\nMessage-ID: %s\r\nFrom: hello@news.example\r\nTo: %s\r\nSubject: News\r\n\r\nHello\r\n",
				verp, rcpt, mid, rcpt)
		case "bob@alpha.test":
			notice = fmt.Sprintf("From: Mail Delivery System <MAILER-DAEMON@relay.alpha.test>\r\nTo: %s\r\nSubject: Undelivered Mail Returned to Sender\r\n"+
				"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n"+
				"--r\r\nContent-Type: text/plain\r\n\r\n<%s>: host mx.alpha.test said: 550 5.1.1 <%s>: Recipient address\r\n"+
				"    rejected: User unknown (in reply to RCPT TO command)\r\n\r\n"+
				"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.alpha.test\r\n\r\n"+
				"Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.1.1\r\n"+
				"Diagnostic-Code: smtp; 550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n\r\n"+
				"--r\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: %s\r\nFrom: hello@news.example\r\nTo: %s\r\n\r\n--r--\r\n",
				verp, rcpt, rcpt, rcpt, rcpt, mid, rcpt)
		default:
			t.Fatalf("unexpected recipient %s", rcpt)
		}
		notices[rcpt] = notice
		if err := netsmtp.SendMail(inbound, nil, "", []string{verp}, []byte(notice)); err != nil {
			t.Fatalf("deliver the notice for %s to the inbound server: %v", rcpt, err)
		}
	}

	d := h.Dashboard(t)
	var doc *goquery.Document
	e2e.Eventually(t, 20*time.Second, "the three bounces on the bounces page", func() bool {
		code, body := d.Get(t, "/deliverability/bounces")
		if code != 200 {
			return false
		}
		var err error
		if doc, err = goquery.NewDocumentFromReader(strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		return doc.Find(`[data-testid="recent-bounces"] tr[data-email]`).Length() == 3
	})
	row := func(email string) (kind, why string) {
		tr := doc.Find(`[data-testid="recent-bounces"] tr[data-email="` + email + `"]`)
		return tr.AttrOr("data-bounce-kind", ""), strings.Join(strings.Fields(tr.Find(`[data-col="why"]`).Text()), " ")
	}
	if kind, why := row("ann@alpha.test"); kind != "soft" || !strings.Contains(why, "R11 unknown recipient, no recipient-stage evidence") {
		t.Errorf("ann: %s, %q; want soft decided by R11", kind, why)
	}
	if kind, why := row("bob@alpha.test"); kind != "hard" || !strings.Contains(why, "R8 unknown recipient, recipient-stage evidence") ||
		!strings.Contains(why, "RCPT TO") {
		t.Errorf("bob: %s, %q; want hard decided by R8 at RCPT TO", kind, why)
	}
	if kind, why := row("cy@alpha.test"); kind != "hard" || !strings.Contains(why, "R8 unknown recipient, recipient-stage evidence") {
		t.Errorf("cy (refused during delivery): %s, %q; want hard decided by R8", kind, why)
	}
	code, body := d.Get(t, "/deliverability/suppressions")
	if code != 200 || !strings.Contains(body, "bob@alpha.test") || strings.Contains(body, "ann@alpha.test") {
		t.Errorf("suppressions page (%d): want bob suppressed and ann not", code)
	}

	// The command line, from the same binary, explains the same decisions
	// and reports a truncated file.
	dir := t.TempDir()
	var files []string
	for _, rcpt := range []string{"ann@alpha.test", "bob@alpha.test"} {
		f := filepath.Join(dir, strings.Split(rcpt, "@")[0]+".eml")
		if err := os.WriteFile(f, []byte(notices[rcpt]), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	cut := filepath.Join(dir, "cut.eml")
	if err := os.WriteFile(cut, []byte(notices["bob@alpha.test"][:60]), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := h.Run(append([]string{"bounce", "parse", "--explain"}, append(files, cut)...)...)
	if err == nil {
		t.Errorf("herald bounce parse with a truncated file succeeded; want a non-zero exit\n%s", out)
	}
	for _, want := range []string{
		"ann.eml: ann@alpha.test\n  verdict:    soft / user_unknown",
		"  decided by: R11 unknown recipient, no recipient-stage evidence",
		"bob.eml: bob@alpha.test\n  verdict:    hard / user_unknown",
		"  decided by: R8 unknown recipient, recipient-stage evidence",
		cut + ": bounce: not a readable message: truncated",
		"1 of 3 files could not be parsed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("herald bounce parse --explain output lacks %q:\n%s", want, out)
		}
	}
}
