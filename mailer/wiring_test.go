package mailer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// TestFromConfigRefusalsAreBounces runs the engine serve runs (FromConfig,
// direct transport behind the staging wrapper) against a receiver that
// refuses some messages at the end of data: a 550 5.1.1 is a hard bounce
// (bounce row, counter, suppression), a 554 5.7.1 spam refusal a soft one
// (row and counter, no suppression yet), both classified as DSNs would be.
func TestFromConfigRefusalsAreBounces(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		mx := startMX(t, "127.0.0.1:0", false, func(rcpt string, _ int64) *smtp.SMTPError {
			switch {
			case strings.HasPrefix(rcpt, "user0@"), strings.HasPrefix(rcpt, "user3@"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			case strings.HasPrefix(rcpt, "user1@"):
				return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message refused as spam"}
			}
			return nil
		})
		_, port, _ := strings.Cut(mx.Addr, ":")
		dns := startDNS(t)
		dns.add(t, "p.test. 300 IN MX 10 mx.p.test.", "mx.p.test. 300 IN A 127.0.0.1")

		e, err := mailer.FromConfig(&config.Config{Transport: "direct", DNSServer: dns.Addr, MXPort: port, NodeID: "t",
			RootURL: "https://herald.test", Secret: strings.Repeat("s", 32)}, s, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		runEngine(t, e)
		list := seed(t, s, 6, []string{"p.test"})
		cid := campaign(t, s, list, "news@herald.test", nil, nil)
		if err := e.StartCampaign(ctx, cid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })

		if p := progress(t, s, cid); p.Sent != 3 || p.Bounced != 3 {
			t.Errorf("counters = %+v, want 3 sent, 3 bounced", p.Counters)
		}
		var rows []struct {
			Email, Kind, Category, Status string
			DuringDelivery                bool
		}
		if err := s.DB().Raw(`SELECT sb.email, b.kind, b.category, b.status, b.during_delivery FROM bounces b
			JOIN subscribers sb ON sb.id = b.subscriber_id WHERE b.campaign_id = ? ORDER BY sb.email`, cid).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		want := []string{"user0@p.test hard user_unknown 5.1.1 true", "user1@p.test soft policy_block 5.7.1 true",
			"user3@p.test hard user_unknown 5.1.1 true"}
		var got []string
		for _, r := range rows {
			got = append(got, strings.Join([]string{r.Email, r.Kind, r.Category, r.Status}, " ")+map[bool]string{true: " true", false: " false"}[r.DuringDelivery])
		}
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Errorf("bounces = %q, want %q", got, want)
		}
		for addr, want := range map[string]bool{"user0@p.test": true, "user3@p.test": true, "user1@p.test": false, "user2@p.test": false} {
			if got, err := s.IsSuppressed(ctx, addr); err != nil || got != want {
				t.Errorf("IsSuppressed(%s) = %v, %v; want %v", addr, got, err, want)
			}
		}
		if st, err := s.CampaignBounceStats(ctx, cid); err != nil || st.Hard != 2 || st.Soft != 1 {
			t.Errorf("CampaignBounceStats = %+v, %v; want 2 hard, 1 soft", st, err)
		}
	})
}

// TestTransportFromConfig: the transports the configuration names, and a
// clear error for what cannot be built.
func TestTransportFromConfig(t *testing.T) {
	for _, c := range []struct {
		cfg     config.Config
		want    string // type, or the error's text
		usesMX  bool
		wantErr bool
	}{
		{config.Config{Transport: "capture"}, "<nil>", false, false},
		{config.Config{Transport: "direct", MXPort: "2525"}, "*mailer.Direct", true, false},
		{config.Config{Transport: "direct", MXOverride: "127.0.0.1:2525"}, "*mailer.Direct", false, false},
		{config.Config{Transport: "relay", Relay: "smtp://u:p@smtp.example.com:587"}, "*mailer.Relay", false, false},
		{config.Config{Transport: "direct", MXPort: "99999"}, `MX port "99999" must be a port number`, false, true},
		{config.Config{Transport: "relay", Relay: "ftp://x"}, "the relay must be a URL such as smtp://", false, true},
		{config.Config{Transport: "pigeon"}, `transport "pigeon" is not one of capture, direct, relay`, false, true},
	} {
		tr, err := mailer.TransportFromConfig(&c.cfg, nil)
		if c.wantErr {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("TransportFromConfig(%+v) = %v; want an error saying %q", c.cfg, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("TransportFromConfig(%+v) = %v", c.cfg, err)
			continue
		}
		if got := fmt.Sprintf("%T", tr); got != c.want {
			t.Errorf("TransportFromConfig(%+v) = %s, want %s", c.cfg, got, c.want)
		}
		mt, ok := tr.(interface{ UsesMX() bool })
		if got := ok && mt.UsesMX(); got != c.usesMX {
			t.Errorf("TransportFromConfig(%+v).UsesMX() = %v, want %v", c.cfg, got, c.usesMX)
		}
	}
}
