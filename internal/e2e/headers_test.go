package e2e_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
)

// oversigned are the header fields issue 14 requires oversigned.
var oversigned = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "List-Unsubscribe",
	"List-Unsubscribe-Post", "List-Id", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

// TestSubdomainSignedLongSubject runs the binary with direct delivery: a
// sending domain set up through the dashboard, its displayed records
// published in the local DNS; a campaign (and a transactional message)
// From a subdomain of it, with a 400-character Japanese subject. dkimpy
// verifies every message against the DNS server (d= the sending domain),
// and fails each copy with an oversigned field prepended; the subject is
// delivered within the line limits and decodes back (Go and Python) to the
// same text.
func TestSubdomainSignedLongSubject(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import dkim, dns.message").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with dkim and dnspython is required in CI: %v", err)
		}
		t.Skipf("python3 dkim unavailable (%v): apt-get install python3-dkim", err)
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.rcpt.test", "127.0.0.2", "rcpt.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	_, recs := h.SendingDomain(t, dns, "sender.example")
	subject := string([]rune(strings.Repeat("春の新製品のご案内と、会員様限定セールのお知らせです。", 16))[:400])
	list := h.List(t, "Readers", "ann@rcpt.test", "bob@rcpt.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "news@updates.sender.example", ReplyTo: "help@sender.example",
		Subject: subject, Lists: []int64{list}})
	h.StartCampaign(t, id)
	h.MustAPI(t, http.StatusCreated, "POST", "/templates", map[string]any{"kind": "transactional", "name": "alert",
		"subject": subject, "text": "Something happened."}, nil)
	h.MustAPI(t, http.StatusAccepted, "POST", "/tx", map[string]any{"template": "alert", "to": "ops@rcpt.test",
		"name": "山田 太郎", "from": "alerts@updates.sender.example"}, nil)
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")
	if st.Counters["sent"] != 2 {
		t.Errorf("counters = %v, want 2 sent", st.Counters)
	}
	e2e.Eventually(t, 30*time.Second, "three messages at the receiver", func() bool { return rcv.Count() == 3 })

	var msgs [][]byte
	for _, m := range rcv.Messages() {
		msgs = append(msgs, m.Data)
		longest := 0
		for _, line := range bytes.Split(m.Data, []byte("\r\n")) {
			longest = max(longest, len(line))
		}
		if longest > 998 {
			t.Errorf("message to %v has a line of %d octets, want <= 998", m.To, longest)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil || got != subject {
			t.Errorf("message to %v: Subject decodes to %q, %v; want the 400-character subject", m.To, got, err)
		}
		if !strings.Contains(msg.Header.Get("From"), "@updates.sender.example>") || !strings.Contains(msg.Header.Get("DKIM-Signature"), "d=sender.example;") {
			t.Errorf("message to %v: From %q, DKIM-Signature %q; want From the subdomain, d=sender.example",
				m.To, msg.Header.Get("From"), msg.Header.Get("DKIM-Signature"))
		}
	}
	var dkimRecs int
	for _, r := range recs {
		if r.Type == "TXT" && strings.Contains(r.Name, "._domainkey.") {
			dkimRecs++
		}
	}
	if dkimRecs == 0 {
		t.Fatalf("the domain page shows no DKIM record: %+v", recs)
	}

	prepend := append(append([]string(nil), oversigned...), "X-Not-Signed")
	res := e2e.DKIMPy(t, dns.Addr, msgs, prepend)
	broken := 0
	for i, v := range res {
		if !v[""] {
			t.Errorf("dkimpy: message %d does not verify as received", i)
		}
		for _, f := range prepend {
			switch {
			case f == "X-Not-Signed" && !v[f]:
				t.Errorf("dkimpy: message %d with an unsigned X-Not-Signed field added fails; want it to verify", i)
			case f != "X-Not-Signed" && v[f]:
				t.Errorf("dkimpy: message %d still verifies with a %s field prepended", i, f)
			case f != "X-Not-Signed":
				broken++
			}
		}
	}
	t.Logf("dkimpy verified %d messages From updates.sender.example (d=sender.example) with the %d displayed records; %d of %d copies with an oversigned field prepended fail",
		len(res), len(recs), broken, len(res)*len(oversigned))

	// An independent reader of the subject: Python's email package.
	script := `
import email, email.policy, json, sys, os
out = []
for f in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], f), 'rb') as fh:
        out.append(str(email.message_from_bytes(fh.read(), policy=email.policy.default)["Subject"]))
print(json.dumps(out))
`
	dir := e2e.WriteMessages(t, msgs)
	out, err := exec.Command("/usr/bin/python3", "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("python email: %v\n%s", err, out)
	}
	var subjects []string
	if err := json.Unmarshal(out, &subjects); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	for i, s := range subjects {
		if s != subject {
			t.Errorf("Python reads message %d's Subject as %q, want the 400-character subject", i, s)
		}
	}
}

// TestReplyToInjectionRefused: through the binary's JSON API, a reply_to
// of "ok@example.com\r\nBcc: …" is refused with a 422 that says why, on
// the transactional API and the campaign API alike; a good request then
// reaches the receiver with its one Reply-To and no Bcc field.
func TestReplyToInjectionRefused(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.rcpt.test", "127.0.0.2", "rcpt.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.MustAPI(t, http.StatusCreated, "POST", "/templates", map[string]any{"kind": "transactional", "name": "reset",
		"subject": "Reset", "text": "Code 42"}, nil)

	const injected = "ok@example.com\r\nBcc: victim@rcpt.test"
	post := func(path string, in map[string]any) (int, string) {
		b, _ := json.Marshal(in)
		req, _ := http.NewRequest("POST", h.URL+"/api/v1"+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+h.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		return resp.StatusCode, body.String()
	}
	code, body := post("/tx", map[string]any{"template": "reset", "to": "ann@rcpt.test", "from": "no-reply@sender.example", "reply_to": injected})
	if code != 422 || !strings.Contains(body, "reply_to") || !strings.Contains(body, "contains a line break") {
		t.Errorf("POST /api/v1/tx with an injected reply_to = %d %s; want 422 saying it contains a line break", code, body)
	}
	list := h.List(t, "Readers", "bob@rcpt.test")
	code, body = post("/campaigns", map[string]any{"name": "Inject", "template_id": 1, "from_email": "news@sender.example",
		"reply_to": injected, "lists": []int64{list}})
	if code != 422 || !strings.Contains(body, `"reply_to"`) || !strings.Contains(body, "contains a line break") {
		t.Errorf("POST /api/v1/campaigns with an injected reply_to = %d %s; want 422 on reply_to saying it contains a line break", code, body)
	}

	if code, body := post("/tx", map[string]any{"template": "reset", "to": "ann@rcpt.test", "from": "no-reply@sender.example",
		"reply_to": "help@sender.example"}); code != http.StatusAccepted {
		t.Fatalf("good tx = %d %s", code, body)
	}
	e2e.Eventually(t, 30*time.Second, "the good message", func() bool { return rcv.Count() == 1 })
	time.Sleep(500 * time.Millisecond) // anything else queued would have followed by now
	for _, m := range rcv.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Header["Bcc"]) != 0 || len(msg.Header["Reply-To"]) != 1 || msg.Header.Get("Reply-To") != "<help@sender.example>" {
			t.Errorf("message to %v: Bcc %q, Reply-To %q; want no Bcc and the one good Reply-To", m.To, msg.Header["Bcc"], msg.Header["Reply-To"])
		}
		for _, to := range m.To {
			if to != "ann@rcpt.test" {
				t.Errorf("the receiver got a message for %s", to)
			}
		}
	}
	if rcv.Count() != 1 {
		t.Errorf("the receiver got %d messages, want 1", rcv.Count())
	}
}
