package mailer_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/url"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// startIMAP serves an in-memory IMAP server over implicit TLS with one user
// and an INBOX, and returns its address and a client for the test's own
// look at the mailbox.
func startIMAP(t *testing.T, user, pass string) (addr string, roots *x509.CertPool) {
	t.Helper()
	cert, roots := selfSigned(t, "imap.test")
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:   imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger: slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError),
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), roots
}

func imapClient(t *testing.T, addr string, roots *x509.CertPool, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: roots, ServerName: "imap.test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func appendMsg(t *testing.T, c *imapclient.Client, folder string, msg []byte) {
	t.Helper()
	cmd := c.Append(folder, int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func countIn(t *testing.T, c *imapclient.Client, folder string) uint32 {
	t.Helper()
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v", folder, err)
	}
	return *st.NumMessages
}

// A real DSN and a real ARF report in an IMAP mailbox are applied like
// mail to the inbound SMTP server, then moved out of the INBOX (or deleted).
func TestPollIMAPMailbox(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		w := newWorld(t, s)
		const user, pass = "bounces@example.com", "p@ss word"
		addr, roots := startIMAP(t, user, pass)
		look := imapClient(t, addr, roots, user, pass)

		alice, bob := "alice@example.net", "bob@example.net"
		appendMsg(t, look, "INBOX", fixture(t, "dsn-hard.eml", map[string]string{
			"VERP": w.verp(w.c1, alice), "RCPT": alice, "MESSAGE_ID": w.messageID(t, w.c1, alice)}))
		appendMsg(t, look, "INBOX", fixture(t, "arf-abuse.eml", map[string]string{
			"FBL": fblAddress, "VERP": "bounces@example.com", "RCPT": "redacted@example.net", "MESSAGE_ID": w.messageID(t, w.c2, bob)}))
		appendMsg(t, look, "INBOX", []byte("From: someone@example.org\r\nTo: bounces@example.com\r\nSubject: hello\r\n\r\nNot a bounce.\r\n"))

		rec, err := mailer.NewRecorder(s, mailer.InboundOptions{Keys: w.kr, BounceDomains: []string{bounceDomain},
			FeedbackAddress: fblAddress, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		mbox := "imaps://" + url.UserPassword(user, pass).String() + "@" + addr + "/INBOX"
		p, err := mailer.NewPoller(rec, mailer.PollOptions{URL: mbox, MoveTo: "Processed", Logger: testLogger(t),
			TLSConfig: &tls.Config{RootCAs: roots, ServerName: "imap.test"}})
		if err != nil {
			t.Fatal(err)
		}
		n, err := p.Poll(ctx)
		if err != nil || n != 3 {
			t.Fatalf("Poll() = %d, %v; want 3, nil", n, err)
		}
		if got := suppressed(t, s, alice); got != models.SuppressHardBounce {
			t.Errorf("alice suppression = %q, want %q", got, models.SuppressHardBounce)
		}
		if got := suppressed(t, s, bob); got != models.SuppressComplaint {
			t.Errorf("bob suppression = %q, want %q", got, models.SuppressComplaint)
		}
		if got := subStatus(t, s, w.sub[bob], w.news); got != models.SubUnsubscribed {
			t.Errorf("bob on News = %q, want unsubscribed", got)
		}
		if got := suppressed(t, s, "carol@example.org"); got != "" {
			t.Errorf("carol suppressed (%q) although nothing bounced", got)
		}
		if st := stats(t, s, w.c1); st.Hard != 1 {
			t.Errorf("campaign 1 hard bounces = %d, want 1", st.Hard)
		}
		if in, moved := countIn(t, look, "INBOX"), countIn(t, look, "Processed"); in != 0 || moved != 3 {
			t.Errorf("after the poll INBOX has %d and Processed %d messages, want 0 and 3", in, moved)
		}

		// Without MoveTo, handled messages are deleted.
		appendMsg(t, look, "INBOX", fixture(t, "dsn-soft.eml", map[string]string{
			"VERP": w.verp(w.c1, "dave@example.org"), "RCPT": "dave@example.org", "MESSAGE_ID": w.messageID(t, w.c1, "dave@example.org")}))
		del, err := mailer.NewPoller(rec, mailer.PollOptions{URL: mbox, Logger: testLogger(t),
			TLSConfig: &tls.Config{RootCAs: roots, ServerName: "imap.test"}})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := del.Poll(ctx); err != nil || n != 1 {
			t.Fatalf("second Poll() = %d, %v; want 1, nil", n, err)
		}
		if in, moved := countIn(t, look, "INBOX"), countIn(t, look, "Processed"); in != 0 || moved != 3 {
			t.Errorf("after the deleting poll INBOX has %d and Processed %d messages, want 0 and 3", in, moved)
		}
		if st := stats(t, s, w.c1); st.Soft != 1 {
			t.Errorf("campaign 1 soft bounces = %d, want 1", st.Soft)
		}
	})
}

func TestPollerRejectsBadURLs(t *testing.T) {
	rec, err := mailer.NewRecorder(nil, mailer.InboundOptions{Keys: token.NewKeyring("x")})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "pop3://u:p@host/", "imaps://host:993/INBOX", "http://u:p@host/"} {
		if _, err := mailer.NewPoller(rec, mailer.PollOptions{URL: u}); err == nil {
			t.Errorf("NewPoller(%q) = nil error, want one", u)
		}
	}
}
