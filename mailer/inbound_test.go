package mailer_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

const (
	bounceDomain = "bounces.example.com"
	fblAddress   = "fbl@bounces.example.com"
)

// world is a database with two lists, four subscribers and two campaigns
// whose deliveries have all been sent.
type world struct {
	s          *models.Store
	kr         *token.Keyring
	news, deal int64            // list ids
	c1, c2     int64            // campaign ids, both sent to news
	sub        map[string]int64 // subscriber id by address
	// deliveries by campaign, then address
	del map[int64]map[string]int64
}

func newWorld(t *testing.T, s *models.Store) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{s: s, kr: token.NewKeyring("inbound test secret"), sub: map[string]int64{}, del: map[int64]map[string]int64{}}
	for _, l := range []*models.List{
		{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic},
		{Name: "Deals", Optin: models.OptinSingle, Visibility: models.ListPublic},
	} {
		if err := s.CreateList(ctx, l); err != nil {
			t.Fatal(err)
		}
		if w.news == 0 {
			w.news = l.ID
		} else {
			w.deal = l.ID
		}
	}
	ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", Actor: "subscriber"}
	for _, e := range []string{"alice@example.net", "bob@example.net", "carol@example.org", "dave@example.org"} {
		lists := map[int64]string{w.news: models.SubConfirmed}
		if e == "carol@example.org" {
			lists[w.deal] = models.SubConfirmed
		}
		sub := &models.Subscriber{Email: e}
		if err := s.CreateSubscriber(ctx, sub, lists, ev); err != nil {
			t.Fatal(err)
		}
		w.sub[e] = sub.ID
	}
	for i, name := range []string{"March news", "April news"} {
		c := &models.Campaign{Name: name, FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{w.news}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			var err error
			if done, err = s.MaterializeCampaign(ctx, c.ID, 100); err != nil {
				t.Fatal(err)
			}
		}
		claimed, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "test", Lease: time.Minute, Limit: 100, CampaignIDs: []int64{c.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) != 4 {
			t.Fatalf("claimed %d deliveries of campaign %d, want 4", len(claimed), c.ID)
		}
		w.del[c.ID] = map[string]int64{}
		var outs []models.Outcome
		for _, d := range claimed {
			w.del[c.ID][d.Email] = d.ID
			// The second campaign's Message-IDs were signed with a
			// secret since retired: the stored copy vouches for them.
			msgID := "<" + w.kr.Sign(token.MessageID, d.ID) + "@example.com>"
			if i == 1 {
				msgID = "<" + token.NewKeyring("a retired secret").Sign(token.MessageID, d.ID) + "@example.com>"
			}
			outs = append(outs, models.Outcome{ID: d.ID, LeaseGen: d.LeaseGen, CampaignID: c.ID, Status: models.DeliverySent, Attempted: true,
				Code: 250, Text: "ok", MessageID: msgID, At: time.Now()})
		}
		if n, err := s.RecordOutcomes(ctx, outs); err != nil || n != 4 {
			t.Fatalf("RecordOutcomes() = %d, %v; want 4, nil", n, err)
		}
		if i == 0 {
			w.c1 = c.ID
		} else {
			w.c2 = c.ID
		}
	}
	return w
}

func (w *world) verp(campaign int64, email string) string {
	return "b-" + w.kr.SignAddress(token.Bounce, w.del[campaign][email]) + "@" + bounceDomain
}

func (w *world) messageID(t *testing.T, campaign int64, email string) string {
	t.Helper()
	d, err := w.s.Delivery(context.Background(), w.del[campaign][email])
	if err != nil {
		t.Fatal(err)
	}
	return d.MessageID
}

// fixture reads testdata/inbound/name and fills in its placeholders.
func fixture(t *testing.T, name string, vars map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "inbound", name))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	return []byte(strings.NewReplacer(pairs...).Replace(string(b)))
}

// startInbound serves an inbound server on a free loopback port until the
// test ends.
func startInbound(t *testing.T, store mailer.InboundStore, o mailer.InboundOptions) string {
	t.Helper()
	if o.BounceDomains == nil {
		o.BounceDomains = []string{bounceDomain}
	}
	if o.FeedbackAddress == "" {
		o.FeedbackAddress = fblAddress
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
	}
	o.Hostname = "mx.herald.test"
	srv, err := mailer.NewInboundServer(store, o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	return ln.Addr().String()
}

// send delivers one message and returns the first SMTP error (at RCPT or
// DATA), or nil when the server accepted it.
func send(t *testing.T, addr, from, to string, msg []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(msg); err != nil {
		return err
	}
	if err := wc.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func wantCode(t *testing.T, what string, err error, code int, enhanced string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("%s: got %v, want SMTP %d %s", what, err, code, enhanced)
	}
	got := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	if se.Code != code || (enhanced != "" && got != enhanced) {
		t.Fatalf("%s: got %d %s %q, want %d %s", what, se.Code, got, se.Message, code, enhanced)
	}
}

func suppressed(t *testing.T, s *models.Store, email string) string {
	t.Helper()
	var reasons []string
	if err := s.DB().Raw("SELECT reason FROM suppressions WHERE value_hash = ?", models.SuppressionHash(email)).Scan(&reasons).Error; err != nil {
		t.Fatal(err)
	}
	if len(reasons) == 0 {
		return ""
	}
	return reasons[0]
}

func stats(t *testing.T, s *models.Store, campaign int64) models.BounceStats {
	t.Helper()
	st, err := s.CampaignBounceStats(context.Background(), campaign)
	if err != nil {
		t.Fatal(err)
	}
	return *st
}

func subStatus(t *testing.T, s *models.Store, sub, list int64) string {
	t.Helper()
	subs, err := s.SubscriptionsOf(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range subs {
		if x.ListID == list {
			return x.Status
		}
	}
	return ""
}

func TestInboundBouncesAndComplaints(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		w := newWorld(t, s)
		addr := startInbound(t, s, mailer.InboundOptions{Keys: w.kr})

		// A hard bounce to alice's VERP address of the first campaign.
		verp := w.verp(w.c1, "alice@example.net")
		dsn := fixture(t, "dsn-hard.eml", map[string]string{"VERP": verp, "RCPT": "alice@example.net",
			"MESSAGE_ID": w.messageID(t, w.c1, "alice@example.net")})
		if err := send(t, addr, "", verp, dsn); err != nil {
			t.Fatalf("hard DSN: %v", err)
		}
		if got := suppressed(t, s, "alice@example.net"); got != models.SuppressHardBounce {
			t.Errorf("alice suppression = %q, want %q", got, models.SuppressHardBounce)
		}
		for _, e := range []string{"bob@example.net", "carol@example.org", "dave@example.org"} {
			if got := suppressed(t, s, e); got != "" {
				t.Errorf("%s suppression = %q, want none", e, got)
			}
		}
		if got, want := stats(t, s, w.c1), (models.BounceStats{Hard: 1}); got != want {
			t.Errorf("campaign 1 stats = %+v, want %+v", got, want)
		}
		if got := stats(t, s, w.c2); got != (models.BounceStats{}) {
			t.Errorf("campaign 2 stats = %+v, want zero", got)
		}
		p, _ := s.CampaignProgress(ctx, w.c1)
		if p.Sent != 3 || p.Bounced != 1 {
			t.Errorf("campaign 1 progress sent=%d bounced=%d, want 3 and 1", p.Sent, p.Bounced)
		}
		d, _ := s.Delivery(ctx, w.del[w.c1]["alice@example.net"])
		if d.Status != models.DeliveryBounced || d.LastEnhanced != "5.1.1" {
			t.Errorf("alice's delivery = %s %q, want bounced 5.1.1", d.Status, d.LastEnhanced)
		}
		if d, _ := s.Delivery(ctx, w.del[w.c2]["alice@example.net"]); d.Status != models.DeliverySent {
			t.Errorf("alice's delivery of campaign 2 = %s, want sent", d.Status)
		}
		rows, err := s.BouncesOfCampaign(ctx, w.c1, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || *rows[0].DeliveryID != w.del[w.c1]["alice@example.net"] || rows[0].Kind != models.BounceHard ||
			rows[0].Status != "5.1.1" || rows[0].Category != "user_unknown" || rows[0].RemoteMTA == "" {
			t.Errorf("bounces of campaign 1 = %+v, want alice's hard 5.1.1 user_unknown", rows)
		}
		if len(rows) == 1 && !strings.HasPrefix(rows[0].Reason, "R8 unknown recipient, recipient-stage evidence: ") {
			t.Errorf("bounce reason = %q, want the classifier's deciding row R8 and its reason", rows[0].Reason)
		}
		// The same DSN again (the sender retried) changes nothing.
		if err := send(t, addr, "", verp, dsn); err != nil {
			t.Fatalf("repeated DSN: %v", err)
		}
		if got := stats(t, s, w.c1); got.Hard != 1 {
			t.Errorf("after a repeated DSN hard = %d, want 1", got.Hard)
		}

		// A soft bounce counts but does not suppress.
		verp = w.verp(w.c1, "bob@example.net")
		soft := fixture(t, "dsn-soft.eml", map[string]string{"VERP": verp, "RCPT": "bob@example.net",
			"MESSAGE_ID": w.messageID(t, w.c1, "bob@example.net")})
		if err := send(t, addr, "", verp, soft); err != nil {
			t.Fatalf("soft DSN: %v", err)
		}
		if got, want := stats(t, s, w.c1), (models.BounceStats{Hard: 1, Soft: 1}); got != want {
			t.Errorf("campaign 1 stats = %+v, want %+v", got, want)
		}
		if got := suppressed(t, s, "bob@example.net"); got != "" {
			t.Errorf("bob suppressed (%q) after one soft bounce", got)
		}

		// An ARF complaint to the feedback address, matched by the signed
		// Message-ID: carol leaves both her lists and is suppressed.
		arf := fixture(t, "arf-abuse.eml", map[string]string{"FBL": fblAddress, "VERP": w.verp(w.c1, "carol@example.org"),
			"RCPT": "carol@example.org", "MESSAGE_ID": w.messageID(t, w.c1, "carol@example.org")})
		if err := send(t, addr, "", fblAddress, arf); err != nil {
			t.Fatalf("ARF: %v", err)
		}
		carol := w.sub["carol@example.org"]
		for _, l := range []int64{w.news, w.deal} {
			if got := subStatus(t, s, carol, l); got != models.SubUnsubscribed {
				t.Errorf("carol on list %d: %q, want unsubscribed", l, got)
			}
		}
		if got := suppressed(t, s, "carol@example.org"); got != models.SuppressComplaint {
			t.Errorf("carol suppression = %q, want complaint", got)
		}
		hist, _ := s.ConsentsBySubscriber(ctx, carol)
		withdrawn := 0
		for _, c := range hist {
			if c.Action == models.ConsentWithdrawn && c.Source == models.SourceComplaint {
				withdrawn++
			}
		}
		if withdrawn != 2 {
			t.Errorf("carol has %d complaint withdrawals in the ledger, want 2: %+v", withdrawn, hist)
		}
		if got, want := stats(t, s, w.c1), (models.BounceStats{Hard: 1, Soft: 1, Complaints: 1}); got != want {
			t.Errorf("campaign 1 stats = %+v, want %+v", got, want)
		}

		// An ARF whose Message-ID is no token is matched through the
		// deliveries table: dave's complaint is about campaign 2. Its
		// original headers carry no VERP address, so only the lookup works.
		arf = fixture(t, "arf-abuse.eml", map[string]string{"FBL": fblAddress, "VERP": "news@example.com",
			"RCPT": "dave@example.org", "MESSAGE_ID": w.messageID(t, w.c2, "dave@example.org")})
		if err := send(t, addr, "", fblAddress, arf); err != nil {
			t.Fatalf("ARF by Message-ID: %v", err)
		}
		if got, want := stats(t, s, w.c2), (models.BounceStats{Complaints: 1}); got != want {
			t.Errorf("campaign 2 stats = %+v, want %+v", got, want)
		}
		if got := subStatus(t, s, w.sub["dave@example.org"], w.news); got != models.SubUnsubscribed {
			t.Errorf("dave on news: %q, want unsubscribed", got)
		}

		// Mail to the List-Unsubscribe mailto address unsubscribes bob.
		unsub := "u-" + w.kr.Sign(token.Unsubscribe, w.del[w.c1]["bob@example.net"]) + "@" + bounceDomain
		msg := fixture(t, "unsubscribe.eml", map[string]string{"RCPT": "bob@example.net", "UNSUB": unsub})
		if err := send(t, addr, "bob@example.net", unsub, msg); err != nil {
			t.Fatalf("mailto unsubscribe: %v", err)
		}
		bob := w.sub["bob@example.net"]
		if got := subStatus(t, s, bob, w.news); got != models.SubUnsubscribed {
			t.Errorf("bob on news: %q, want unsubscribed", got)
		}
		hist, _ = s.ConsentsBySubscriber(ctx, bob)
		if last := hist[len(hist)-1]; last.Action != models.ConsentWithdrawn || last.Source != models.SourceOneClick {
			t.Errorf("bob's last consent row = %s/%s, want withdrawn/one_click", last.Action, last.Source)
		}
		if got := suppressed(t, s, "bob@example.net"); got != "" {
			t.Errorf("bob suppressed (%q) by an unsubscribe", got)
		}

		if brk, _, err := s.VerifyConsents(ctx); err != nil || brk != nil {
			t.Fatalf("VerifyConsents() = %+v, %v; want an intact chain", brk, err)
		}
	})
}

func TestInboundRefusesBadInput(t *testing.T) {
	s := testdb.SQLite(t)
	w := newWorld(t, s)
	addr := startInbound(t, s, mailer.InboundOptions{Keys: w.kr})
	dsn := func(verp string) []byte {
		return fixture(t, "dsn-hard.eml", map[string]string{"VERP": verp, "RCPT": "alice@example.net", "MESSAGE_ID": "<x@example.com>"})
	}
	other := token.NewKeyring("someone else's secret")
	aliceID := w.del[w.c1]["alice@example.net"]

	refused := []struct {
		name, rcpt string
		code       int
		enhanced   string
	}{
		{"relay", "someone@gmail.com", 550, "5.7.1"},
		{"relay with a VERP-looking address", "b-" + w.kr.Sign(token.Bounce, aliceID) + "@gmail.com", 550, "5.7.1"},
		{"unknown local user", "postmaster@" + bounceDomain, 550, "5.1.1"},
		{"forged VERP token", "b-AAAAAAAAAAAAAAAAAAAAAAAAAAAA@" + bounceDomain, 550, "5.7.1"},
		{"VERP signed with another key", "b-" + other.Sign(token.Bounce, aliceID) + "@" + bounceDomain, 550, "5.7.1"},
		{"token of the wrong kind", "b-" + w.kr.Sign(token.Open, aliceID) + "@" + bounceDomain, 550, "5.7.1"},
		{"forged unsubscribe token", "u-" + other.Sign(token.Unsubscribe, aliceID) + "@" + bounceDomain, 550, "5.7.1"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := send(t, addr, "", tc.rcpt, dsn(tc.rcpt))
			wantCode(t, "RCPT "+tc.rcpt, err, tc.code, tc.enhanced)
		})
	}

	t.Run("malformed MIME", func(t *testing.T) {
		verp := w.verp(w.c1, "bob@example.net")
		if err := send(t, addr, "", verp, fixture(t, "malformed.eml", nil)); err != nil {
			t.Fatalf("malformed message: %v, want accepted and ignored", err)
		}
		if got := stats(t, s, w.c1); got != (models.BounceStats{}) {
			t.Errorf("stats after a malformed message = %+v, want zero", got)
		}
	})

	t.Run("unknown delivery", func(t *testing.T) {
		verp := "b-" + w.kr.Sign(token.Bounce, 987654321) + "@" + bounceDomain
		if err := send(t, addr, "", verp, dsn(verp)); err != nil {
			t.Fatalf("DSN for an unknown delivery: %v, want accepted", err)
		}
	})

	t.Run("30 MB message", func(t *testing.T) {
		verp := w.verp(w.c1, "bob@example.net")
		big := append(dsn(verp), bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), 30<<20/78)...)
		err := send(t, addr, "", verp, big)
		wantCode(t, "30 MB DATA", err, 552, "5.3.4")
	})

	t.Run("30 MB announced with SIZE", func(t *testing.T) {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Mail("", &smtp.MailOptions{Size: 30 << 20})
		wantCode(t, "MAIL SIZE=30MB", err, 552, "")
	})

	// The server still serves after all that.
	verp := w.verp(w.c1, "dave@example.org")
	if err := send(t, addr, "", verp, dsn(verp)); err != nil {
		t.Fatalf("normal DSN after bad input: %v", err)
	}
	if got := suppressed(t, s, "dave@example.org"); got != models.SuppressHardBounce {
		t.Errorf("dave suppression = %q, want hard_bounce", got)
	}
	if got := stats(t, s, w.c1); got != (models.BounceStats{Hard: 1}) {
		t.Errorf("stats = %+v, want one hard bounce", got)
	}
}

// greeting dials addr and returns the server's first reply line.
func greeting(addr string) (net.Conn, string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return c, line, nil
}

func TestInboundConnectionLimits(t *testing.T) {
	s := testdb.SQLite(t)
	w := newWorld(t, s)
	const perIP, dialers = 50, 1000
	addr := startInbound(t, s, mailer.InboundOptions{Keys: w.kr, MaxConnsPerIP: perIP, MaxConns: 5000, RatePerIP: 1e6, RateBurst: 1e6})

	var (
		mu                   sync.Mutex
		ok, busy, other, bad int
		greeted, release     sync.WaitGroup
	)
	greeted.Add(dialers)
	release.Add(1)
	var all sync.WaitGroup
	for range dialers {
		all.Add(1)
		go func() {
			defer all.Done()
			c, line, err := greeting(addr)
			mu.Lock()
			switch {
			case err != nil:
				bad++
			case strings.HasPrefix(line, "220 "):
				ok++
			case strings.HasPrefix(line, "421 4.7.0"):
				busy++
			default:
				other++
			}
			mu.Unlock()
			greeted.Done()
			// Hold accepted connections until every dialer has its answer,
			// so the server sees them all at once.
			release.Wait()
			if c != nil {
				c.Close()
			}
		}()
	}
	greeted.Wait()
	release.Done()
	all.Wait()
	if ok != perIP || busy != dialers-perIP || other != 0 || bad != 0 {
		t.Fatalf("%d connections: %d greeted, %d got 421, %d other replies, %d failed; want %d greeted and the rest 421",
			dialers, ok, busy, other, bad, perIP)
	}

	// Freed slots are usable again at once.
	verp := w.verp(w.c1, "alice@example.net")
	var err error
	for range 50 { // closes reach the server asynchronously
		if err = send(t, addr, "", verp, fixture(t, "dsn-hard.eml", map[string]string{"VERP": verp, "RCPT": "alice@example.net", "MESSAGE_ID": "<x@y>"})); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("normal message after the flood: %v", err)
	}
	if got := suppressed(t, s, "alice@example.net"); got != models.SuppressHardBounce {
		t.Errorf("alice suppression = %q after the flood, want hard_bounce", got)
	}
}

func TestInboundRateLimit(t *testing.T) {
	kr := token.NewKeyring("x")
	addr := startInbound(t, nil, mailer.InboundOptions{Keys: kr, RatePerIP: 0.001, RateBurst: 2})
	var lines []string
	for range 3 {
		c, line, err := greeting(addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		lines = append(lines, strings.TrimSpace(line))
	}
	if !strings.HasPrefix(lines[0], "220 ") || !strings.HasPrefix(lines[1], "220 ") || !strings.HasPrefix(lines[2], "421 4.7.0") {
		t.Fatalf("greetings = %q, want two 220 then 421", lines)
	}
}

func TestInboundSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swaks is required in CI: apt-get install swaks")
		}
		t.Skip("swaks not installed")
	}
	s := testdb.SQLite(t)
	w := newWorld(t, s)
	addr := startInbound(t, s, mailer.InboundOptions{Keys: w.kr})
	verp := w.verp(w.c2, "bob@example.net")
	file := filepath.Join(t.TempDir(), "dsn.eml")
	msg := fixture(t, "dsn-hard.eml", map[string]string{"VERP": verp, "RCPT": "bob@example.net",
		"MESSAGE_ID": w.messageID(t, w.c2, "bob@example.net")})
	if err := os.WriteFile(file, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, swaks, "--server", host, "--port", port, "--helo", "mx.example.net",
		"--from", "<>", "--to", verp, "--data", "@"+file).CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("<-  250 2.0.0 OK")) {
		t.Fatalf("swaks transcript shows no 250 after DATA:\n%s", out)
	}
	if got := suppressed(t, s, "bob@example.net"); got != models.SuppressHardBounce {
		t.Errorf("bob suppression = %q, want hard_bounce", got)
	}
	if got := stats(t, s, w.c2); got != (models.BounceStats{Hard: 1}) {
		t.Errorf("campaign 2 stats = %+v, want one hard bounce", got)
	}
}

// A client cannot hold a connection by keeping every command under the
// per-command timeout: the session ends at SessionTimeout, and a message
// fed a line at a time ends at MessageTimeout.
func TestInboundTotalTimeLimits(t *testing.T) {
	s := testdb.SQLite(t)
	w := newWorld(t, s)
	addr := startInbound(t, s, mailer.InboundOptions{Keys: w.kr, ReadTimeout: 2 * time.Second,
		MessageTimeout: 2 * time.Second, SessionTimeout: 6 * time.Second})

	// held sends lines every 300ms (each well within ReadTimeout) until
	// the server closes the connection, and says how long that took.
	held := func(lines func(i int) string) time.Duration {
		c, line, err := greeting(addr)
		if err != nil || !strings.HasPrefix(line, "220") {
			t.Fatalf("greeting: %q, %v", line, err)
		}
		defer c.Close()
		start := time.Now()
		go io.Copy(io.Discard, c)
		for i := 0; time.Since(start) < 20*time.Second; i++ {
			if _, err := io.WriteString(c, lines(i)); err != nil {
				return time.Since(start)
			}
			time.Sleep(300 * time.Millisecond)
		}
		return time.Since(start)
	}
	noops := held(func(i int) string { return "NOOP\r\n" })
	t.Logf("NOOP every 300ms: closed after %v", noops)
	if noops < 5*time.Second || noops > 12*time.Second {
		t.Errorf("NOOP every 300ms held the connection %v, want it closed at the 6s session limit", noops)
	}
	verp := w.verp(w.c1, "alice@example.net")
	drip := held(func(i int) string {
		switch i {
		case 0:
			return "EHLO mx.example.net\r\n"
		case 1:
			return "MAIL FROM:<>\r\n"
		case 2:
			return "RCPT TO:<" + verp + ">\r\n"
		case 3:
			return "DATA\r\n"
		}
		return "X-Drip: a line\r\n"
	})
	t.Logf("message a line every 300ms: closed after %v", drip)
	if drip < 1500*time.Millisecond || drip > 4500*time.Millisecond {
		t.Errorf("message fed a line every 300ms held the connection %v, want it closed at the 2s message limit", drip)
	}
}
