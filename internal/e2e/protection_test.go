package e2e_test

import (
	"bytes"
	"fmt"
	"net/mail"
	netsmtp "net/smtp"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/e2e"
)

// arfReport is a feedback-loop complaint (RFC 5965) about one message the
// receiver got, as a mailbox provider's loop sends it.
func arfReport(fbl, verp, rcpt, messageID string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(`From: Feedback Loop <feedbackloop@fbl.alpha.test>
To: %[1]s
Subject: Email Feedback Report
Message-ID: <fbl.%[4]d@fbl.alpha.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: text/plain; charset=us-ascii

This is an email abuse report.

--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: AlphaFBL/1.0
Version: 1
Original-Mail-From: <%[2]s>
Original-Rcpt-To: <%[3]s>
Reporting-MTA: dns; fbl.alpha.test

--arf
Content-Type: message/rfc822
Content-Disposition: inline

Return-Path: <%[2]s>
From: Herald E2E <hello@news.example>
To: %[3]s
Subject: News
Message-ID: %[5]s
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello.

--arf--
`, fbl, verp, rcpt, time.Now().UnixNano(), messageID), "\n", "\r\n"))
}

// TestComplaintsPauseCampaign runs the built binary: a campaign to 200
// readers goes out over direct delivery, slowly (the default rule's 200
// messages a minute for an unknown provider). Once 60 have arrived, three
// recipients complain through the feedback loop: real ARF reports over
// SMTP to Herald's inbound server. With the pause threshold at the
// default 0.3% and a minimum sample of 50 messages (set on Settings →
// Protection), automatic protection pauses the campaign by itself, mid-
// send: the receiver gets fewer than all 200, the campaign page shows the
// reason, and the audit log has the pause.
func TestComplaintsPauseCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	inbound := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t))
	const fbl = "fbl@news.example"
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port,
		Env: []string{"HERALD_INBOUND_LISTEN=" + inbound, "HERALD_FEEDBACK_ADDRESS=" + fbl}})
	h.SendingDomain(t, dns, "news.example")

	d := h.Dashboard(t)
	if code, _ := d.Post(t, "/settings/protection", url.Values{"enabled": {"on"}, "complaint_warn_pct": {"0.1"}, "complaint_pause_pct": {"0.3"},
		"hard_bounce_pause_pct": {"2"}, "deferral_pause_pct": {"30"}, "deferral_window_minutes": {"60"}, "min_sent": {"50"}}); code != 303 {
		t.Fatalf("save protection settings = %d, want 303", code)
	}
	if _, body := d.Get(t, "/settings/protection"); !strings.Contains(body, "Protection settings saved") || !strings.Contains(body, `value="50"`) {
		t.Fatal("the protection page does not show the saved minimum sample of 50")
	}

	const total = 200
	list := h.Audience(t, total, "alpha.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	e2e.Eventually(t, 90*time.Second, "60 messages at the receiver", func() bool { return rcv.Count() >= 60 })

	for _, m := range rcv.Messages()[:3] {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if err := netsmtp.SendMail(inbound, nil, "", []string{fbl}, arfReport(fbl, m.From, m.To[0], msg.Header.Get("Message-Id"))); err != nil {
			t.Fatalf("deliver the complaint about %s to the inbound server: %v", m.To[0], err)
		}
	}
	st := h.WaitCampaign(t, id, 60*time.Second, "paused", "finished")
	if st.Status != "paused" {
		t.Fatalf("campaign %s with %v; want paused by the complaints", st.Status, st.Counters)
	}
	var api struct {
		Data struct {
			PauseReason string `json:"pause_reason"`
		} `json:"data"`
	}
	h.MustAPI(t, 200, "GET", fmt.Sprintf("/campaigns/%d", id), nil, &api)
	if !strings.Contains(api.Data.PauseReason, "3 spam complaints for") {
		t.Errorf("API pause_reason = %q, want the reason", api.Data.PauseReason)
	}
	time.Sleep(3 * time.Second) // messages already handed to a connection finish
	got := rcv.Count()
	if got >= total {
		t.Errorf("receiver got %d of %d messages; want the pause to stop the rest", got, total)
	}
	t.Logf("paused with %d of %d messages at the receiver", got, total)

	code, body := d.Get(t, fmt.Sprintf("/campaigns/%d", id))
	if code != 200 {
		t.Fatalf("campaign page = %d", code)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	banner := strings.Join(strings.Fields(doc.Find(`[data-testid="pause-reason"]`).Text()), " ")
	for _, want := range []string{"Paused by automatic protection", "3 spam complaints for", "reached the pause threshold of 0.3%",
		"at least 50 messages", "unsubscribe link"} {
		if !strings.Contains(banner, want) {
			t.Errorf("pause banner %q lacks %q", banner, want)
		}
	}
	var audits []string
	h.Store(t).DB().Raw("SELECT summary FROM audit_log WHERE action = 'campaign.auto_pause' AND object_id = ?", strconv.FormatInt(id, 10)).Scan(&audits)
	if len(audits) != 1 || !strings.Contains(audits[0], "3 spam complaints") {
		t.Errorf("audit entries for the pause: %q; want one with the reason", audits)
	}
	// Sending stays stopped.
	time.Sleep(3 * time.Second)
	if later := rcv.Count(); later != got {
		t.Errorf("receiver count went from %d to %d after the pause", got, later)
	}
}
