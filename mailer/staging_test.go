package mailer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// With staging on, a campaign reaches the real SMTP server only for
// allow-listed recipients; the rest land in the outbox. With staging off,
// everyone gets real mail.
func TestStagingTransport(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		sink := startMX(t, "127.0.0.1:0", false, nil)
		host, port, _ := strings.Cut(sink.Addr, ":")
		p, _ := strconv.Atoi(port)
		real := mailer.NewRelay(mailer.RelayOptions{HELO: "herald.test", Hosts: []mailer.RelayHost{{Host: host, Port: p, TLS: mailer.TLSNone}}})
		tr := mailer.Staging(real, mailer.NewCapture(s), mailer.StagingPolicy(s, 0))

		if err := s.SetSetting(ctx, models.SettingStaging, "on"); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"@allowed.test", "user1@other.test"} {
			if _, err := s.AddAllowEntry(ctx, v, "test inbox"); err != nil {
				t.Fatal(err)
			}
		}
		list := seed(t, s, 4, []string{"allowed.test", "other.test"}) // user0,2 @allowed; user1,3 @other
		e := mailer.New(mailer.Options{Logger: testLogger(t), RootURL: "https://herald.test", Transport: tr}, s)
		runEngine(t, e)
		cid := campaign(t, s, list, "news@herald.test", nil, nil)
		if err := e.StartCampaign(ctx, cid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })

		var real_ []string
		for _, m := range sink.messages() {
			real_ = append(real_, m.To)
		}
		sort.Strings(real_)
		if got, want := strings.Join(real_, ","), "user0@allowed.test,user1@other.test,user2@allowed.test"; got != want {
			t.Errorf("SMTP sink received %q, want %q", got, want)
		}
		out, err := s.Outbox(ctx, models.OutboxQuery{CampaignID: cid})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].RcptTo != "user3@other.test" {
			t.Fatalf("outbox = %+v, want only user3@other.test", out)
		}

		// Staging off: the same transport sends everyone for real.
		if err := s.SetSetting(ctx, models.SettingStaging, "off"); err != nil {
			t.Fatal(err)
		}
		cid2 := campaign(t, s, list, "news@herald.test", nil, nil)
		if err := e.StartCampaign(ctx, cid2); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "second campaign to finish", func() bool { return progress(t, s, cid2).Status == models.CampaignFinished })
		if n := sink.count(); n != 3+4 {
			t.Errorf("SMTP sink has %d messages after staging off, want 7", n)
		}
		if out, _ := s.Outbox(ctx, models.OutboxQuery{CampaignID: cid2}); len(out) != 0 {
			t.Errorf("outbox of the second campaign has %d messages, want 0", len(out))
		}
	})
}

// countingStaging counts the staging switch reads made through a real store.
type countingStaging struct {
	*models.Store
	reads int
}

func (c *countingStaging) Setting(ctx context.Context, key string) (string, error) {
	c.reads++
	return c.Store.Setting(ctx, key)
}

// With staging off, the policy reads the switch once per refresh, not once
// per message: a production send pays no query per recipient.
func TestStagingPolicyReadsTheSwitchOncePerRefresh(t *testing.T) {
	ctx := context.Background()
	s := &countingStaging{Store: testdb.SQLite(t)}
	allowed := mailer.StagingPolicy(s, time.Hour)
	for i := range 100 {
		if ok, err := allowed(ctx, fmt.Sprintf("user%d@example.org", i)); !ok || err != nil {
			t.Fatalf("allowed = %v, %v; staging is off, yet a recipient was held back", ok, err)
		}
	}
	if s.reads != 1 {
		t.Errorf("switch read %d times for 100 messages, want 1", s.reads)
	}
	// With no refresh interval every message reads it (what the tests above
	// rely on to flip the switch mid-test).
	s.reads = 0
	each := mailer.StagingPolicy(s, 0)
	each(ctx, "a@example.org")
	each(ctx, "b@example.org")
	if s.reads != 2 {
		t.Errorf("switch read %d times with refresh 0, want 2", s.reads)
	}
}

// The staging wrapper changes where a message goes, not how the real
// transport reports it: it routes with the real transport's resolver, and
// a real dial that fails comes back from Send as the transport's
// *DialError (which the engine handles as a failed dial).
func TestStagingKeepsTransportBehaviour(t *testing.T) {
	s := testdb.SQLite(t)
	res := mailer.NewResolver("127.0.0.1:1")
	direct := mailer.NewDirect(mailer.DirectOptions{Resolver: res})
	tr := mailer.Staging(direct, mailer.NewCapture(s), func(context.Context, string) (bool, error) { return true, nil })
	mt, ok := tr.(interface {
		UsesMX() bool
		Resolver() *mailer.Resolver
	})
	if !ok || !mt.UsesMX() || mt.Resolver() != res {
		t.Fatalf("Staging(direct) UsesMX/Resolver = %v; want the direct transport's resolver", ok)
	}
	relay := mailer.Staging(mailer.NewRelay(mailer.RelayOptions{}), mailer.NewCapture(s), nil)
	if mt, ok := relay.(interface{ UsesMX() bool }); ok && mt.UsesMX() {
		t.Error("Staging(relay).UsesMX() = true, want false")
	}

	// A port nothing listens on: the connection is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	refused := mailer.Staging(mailer.NewDirect(mailer.DirectOptions{Resolver: res, MXOverride: addr}), mailer.NewCapture(s),
		func(context.Context, string) (bool, error) { return true, nil })
	conn, err := refused.Dial(context.Background(), mailer.Route{Domain: "example.com"})
	if err != nil {
		t.Fatalf("Dial() = %v; staging dials the real transport when a recipient needs it", err)
	}
	defer conn.Close()
	rep, err := conn.Send(context.Background(), &mailer.Envelope{From: "a@herald.test", To: "b@example.com", Message: []byte("Subject: x\r\n\r\nx\r\n")})
	var de *mailer.DialError
	if !errors.As(err, &de) || rep.Code != 0 {
		t.Fatalf("Send() = %+v, %v; want the real transport's *DialError", rep, err)
	}
}
