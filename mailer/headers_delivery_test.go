package mailer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// requirePython skips (or, in CI, fails) a test that needs /usr/bin/python3
// with dkimpy (python3-dkim, which brings dnspython).
func requirePython(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import dkim, dns.message").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with dkim and dnspython is required in CI: %v", err)
		}
		t.Skipf("python3 dkim unavailable (%v): apt-get install python3-dkim", err)
	}
}

// publishDisplayed serves every record Herald shows on the sending
// domain's page (DNSRecords, in the zone-file form the page prints) from
// the test's DNS server.
func publishDisplayed(t *testing.T, ns *fakeDNS, sd *models.SendingDomain) {
	t.Helper()
	for _, r := range sd.DNSRecords(models.DNSRecordOptions{}) {
		ns.add(t, r.ZoneLine())
	}
}

// oversigned are the fields the issue requires oversigned.
var oversigned = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "List-Unsubscribe",
	"List-Unsubscribe-Post", "List-Id", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

// A campaign and a transactional message From a subdomain of a sending
// domain are signed with the sending domain's key (d= the parent), as the
// pre-send checklist says; dkimpy verifies them with exactly the records
// Herald displays, served by a DNS server; and prepending any oversigned
// field breaks the signature, while a field that is not signed does not.
func TestSubdomainFromSignedAndOversigned(t *testing.T) {
	requirePython(t)
	ctx := context.Background()
	s := testdb.SQLite(t)
	ns := startDNS(t)
	secret := "subdomain-secret"
	sd, err := s.CreateSendingDomain(ctx, "sender.test", secret, models.SendingDomainOptions{Ed25519: true})
	if err != nil {
		t.Fatal(err)
	}
	publishDisplayed(t, ns, sd)
	list := seed(t, s, 3, []string{"rcpt.test"})
	cid := campaign(t, s, list, "news@updates.sender.test", nil, func(c *models.Campaign) { c.ReplyTo = "help@sender.test" })
	if err := s.SetSetting(ctx, models.SettingPostalAddress, "1 Main St"); err != nil {
		t.Fatal(err)
	}

	checks, err := (&mailer.Readiness{Store: s}).CampaignChecks(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.ID == "campaign.dkim" && (!c.OK || !strings.Contains(c.Detail, "Signed by sender.test")) {
			t.Errorf("checklist campaign.dkim = %v %q, want signed by sender.test", c.OK, c.Detail)
		}
	}

	tpl := &models.Template{Kind: models.TemplateTransactional, Name: "alert", Subject: "Alert", Text: "Something happened."}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	mx := startMX(t, "127.0.0.1:0", true, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{secret}, RootURL: "https://h.sender.test",
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTransactional(ctx, mailer.TransactionalRequest{Template: "alert", To: "ops@rcpt.test",
		From: "alerts@updates.sender.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "four messages", func() bool { return mx.count() == 4 })

	var msgs [][]byte
	for _, m := range mx.messages() {
		msgs = append(msgs, m.Data)
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: ns.txtLookup})
		if err != nil || len(vs) != 2 {
			t.Fatalf("message to %s: %d signatures, %v; want RSA and Ed25519", m.To, len(vs), err)
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "sender.test" {
				t.Errorf("message to %s: signature d=%s: %v; want a valid one by sender.test", m.To, v.Domain, v.Err)
			}
			count := map[string]int{}
			for _, k := range v.HeaderKeys {
				count[strings.ToLower(k)]++
			}
			for _, h := range oversigned {
				if count[strings.ToLower(h)] < 1 {
					t.Errorf("h= %v does not name %s", v.HeaderKeys, h)
				}
			}
			if count["from"] != 2 || count["subject"] != 2 || count["cc"] != 1 {
				t.Errorf("h= names From %d, Subject %d, Cc %d times; want 2, 2, 1 (present once, or absent, plus one)",
					count["from"], count["subject"], count["cc"])
			}
		}
		if !bytes.Contains(m.Data, []byte("\r\nFrom: ")) || !strings.Contains(string(m.Data), "updates.sender.test>") {
			t.Errorf("message to %s is not From updates.sender.test", m.To)
		}
	}

	prepend := append(append([]string(nil), oversigned...), "Feedback-ID", "X-Not-Signed")
	res := e2e.DKIMPy(t, ns.Addr, msgs, prepend)
	if len(res) != len(msgs) {
		t.Fatalf("dkimpy checked %d messages, want %d", len(res), len(msgs))
	}
	broken := 0
	for i, v := range res {
		if !v[""] {
			t.Errorf("dkimpy: message %d does not verify as received", i)
		}
		for _, h := range prepend {
			switch {
			case h == "X-Not-Signed" && !v[h]:
				t.Errorf("dkimpy: message %d with an unsigned X-Not-Signed field added fails; want it to verify", i)
			case h != "X-Not-Signed" && v[h]:
				t.Errorf("dkimpy: message %d still verifies with a %s field prepended", i, h)
			case h != "X-Not-Signed":
				broken++
			}
		}
	}
	t.Logf("dkimpy: %d messages verify (d=sender.test, From updates.sender.test); %d of %d altered copies fail",
		len(res), broken, len(res)*(len(prepend)-1))
}

// A 400-character Japanese subject, and a Japanese recipient name, are
// delivered in lines within the limits and decode back to the same text,
// read by Go's decoder and by Python's email package.
func TestJapaneseSubjectDelivered(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	subject := strings.Repeat("春の新製品のご案内と、会員様限定セールのお知らせです。", 16)
	subject = string([]rune(subject)[:400])
	name := "山田 太郎"
	list := testdb.Readers(t, s, "jp", 1, func(int) testdb.Reader {
		return testdb.Reader{Email: "taro@rcpt.test", Name: name}
	})
	cid := campaign(t, s, list, "news@sender.test", nil, func(c *models.Campaign) { c.Subject = subject })
	mx := startMX(t, "127.0.0.1:0", true, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"jp"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
	if p := progress(t, s, cid); p.Sent != 1 || mx.count() != 1 {
		t.Fatalf("counters = %+v, %d received; want 1 sent and received", p.Counters, mx.count())
	}
	data := mx.messages()[0].Data
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	longest := 0
	for _, line := range bytes.Split(data, []byte("\r\n")) {
		longest = max(longest, len(line))
	}
	longestHead := 0
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		longestHead = max(longestHead, len(line))
	}
	t.Logf("subject of %d characters (%d octets); longest line %d octets, longest header line %d", len([]rune(subject)), len(subject), longest, longestHead)
	if longest > 998 || longestHead > 78 {
		t.Errorf("longest line %d octets (header %d), want <= 998 (header <= 78)", longest, longestHead)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil || got != subject {
		t.Errorf("Subject decodes (Go) to %q, %v; want %q", got, err, subject)
	}
	script := `
import email, email.policy, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print(json.dumps({"subject": str(m["Subject"]), "to": m["To"].addresses[0].display_name}))
`
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python email: %v\n%s", err, out)
	}
	var py struct{ Subject, To string }
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if py.Subject != subject || py.To != name {
		t.Errorf("Python reads Subject %q and To name %q; want %q and %q", py.Subject, py.To, subject, name)
	}
}

// utf8MX is a receiver that records whether MAIL FROM carried SMTPUTF8.
type utf8MX struct {
	addr string
	mu   sync.Mutex
	got  []utf8Msg
}

type utf8Msg struct {
	to   string
	utf8 bool
	data []byte
}

func startUTF8MX(t *testing.T, offer bool) *utf8MX {
	t.Helper()
	m := &utf8MX{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &utf8Session{m: m}, nil }))
	srv.Domain, srv.EnableSMTPUTF8 = "mx.test", offer
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *utf8MX) messages() []utf8Msg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]utf8Msg(nil), m.got...)
}

type utf8Session struct {
	m    *utf8MX
	utf8 bool
	to   string
}

func (s *utf8Session) Reset()        { s.utf8, s.to = false, "" }
func (s *utf8Session) Logout() error { return nil }
func (s *utf8Session) Mail(_ string, o *smtp.MailOptions) error {
	s.utf8 = o != nil && o.UTF8
	return nil
}
func (s *utf8Session) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }
func (s *utf8Session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.m.mu.Lock()
	s.m.got = append(s.m.got, utf8Msg{to: s.to, utf8: s.utf8, data: b})
	s.m.mu.Unlock()
	return err
}

// An address whose local part is not ASCII goes, with SMTPUTF8 on MAIL
// FROM, to a server that offers it; to one that does not, nothing is sent
// and the delivery fails for good with a reason saying why, while an
// ASCII address on the same server is delivered.
func TestNonASCIILocalPartNeedsSMTPUTF8(t *testing.T) {
	for _, offer := range []bool{false, true} {
		t.Run(fmt.Sprintf("offered=%v", offer), func(t *testing.T) {
			ctx := context.Background()
			s := testdb.SQLite(t)
			addrs := []string{"用户@rcpt.test", "plain@rcpt.test"}
			list := testdb.Readers(t, s, "utf8", len(addrs), func(k int) testdb.Reader { return testdb.Reader{Email: addrs[k]} })
			cid := campaign(t, s, list, "news@sender.test", nil, nil)
			mx := startUTF8MX(t, offer)
			e := mailer.New(mailer.Options{Logger: quietLogger(), Secrets: []string{"u"},
				Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.addr})}, s)
			runEngine(t, e)
			if err := e.StartCampaign(ctx, cid); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "the campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
			got := map[string]utf8Msg{}
			for _, m := range mx.messages() {
				got[m.to] = m
			}
			if m, ok := got["plain@rcpt.test"]; !ok || m.utf8 {
				t.Errorf("plain@rcpt.test: received %v, SMTPUTF8 %v; want received without SMTPUTF8", ok, m.utf8)
			}
			var d models.Delivery
			if err := s.DB().Where("campaign_id = ? AND subscriber_id = (SELECT id FROM subscribers WHERE email = ?)", cid, addrs[0]).First(&d).Error; err != nil {
				t.Fatal(err)
			}
			m, ok := got[addrs[0]]
			if offer {
				if !ok || !m.utf8 || !bytes.Contains(m.data, []byte("<"+addrs[0]+">")) || d.Status != models.DeliverySent {
					t.Errorf("with SMTPUTF8 offered: received %v, SMTPUTF8 %v, delivery %s; want received with SMTPUTF8, To: <%s>, sent",
						ok, m.utf8, d.Status, addrs[0])
				}
				return
			}
			t.Logf("delivery %s: %d %s %s", d.Status, d.LastCode, d.LastEnhanced, d.LastText)
			if ok || d.Status != models.DeliveryFailed || !strings.Contains(d.LastText, "SMTPUTF8") {
				t.Errorf("without SMTPUTF8: received %v, delivery %s %q; want nothing sent, failed, naming SMTPUTF8", ok, d.Status, d.LastText)
			}
		})
	}
}
