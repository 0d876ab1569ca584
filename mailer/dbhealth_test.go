package mailer_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// errOutage is what calls to a stopped database server fail with.
var errOutage = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

// outageStore is a real store whose database goes away while down is set:
// every call the engine makes on its way fails then, as calls to a stopped
// server do. The outage begins by itself at the after-th call of the send
// path (the outbox, the staging switch), so it falls mid-send.
type outageStore struct {
	*models.Store
	after int64
	sends atomic.Int64
	down  atomic.Bool
}

func (o *outageStore) fail() error {
	if o.down.Load() {
		return errOutage
	}
	return nil
}

func (o *outageStore) sendPath() error {
	if o.sends.Add(1) == o.after {
		o.down.Store(true)
	}
	return o.fail()
}

func (o *outageStore) SaveOutbox(ctx context.Context, m *models.OutboxMessage) error {
	if err := o.sendPath(); err != nil {
		return err
	}
	return o.Store.SaveOutbox(ctx, m)
}

func (o *outageStore) Setting(ctx context.Context, key string) (string, error) {
	if err := o.sendPath(); err != nil {
		return "", err
	}
	return o.Store.Setting(ctx, key)
}

func (o *outageStore) Ping(ctx context.Context) error {
	if err := o.fail(); err != nil {
		return err
	}
	return o.Store.Ping(ctx)
}

func (o *outageStore) ClaimDeliveries(ctx context.Context, req models.ClaimRequest) ([]models.Claimed, error) {
	if err := o.fail(); err != nil {
		return nil, err
	}
	return o.Store.ClaimDeliveries(ctx, req)
}

func (o *outageStore) RecordOutcomes(ctx context.Context, outs []models.Outcome) (int, error) {
	if err := o.fail(); err != nil {
		return 0, err
	}
	return o.Store.RecordOutcomes(ctx, outs)
}

func (o *outageStore) RenewLeases(ctx context.Context, leases []models.Lease, lease time.Duration) error {
	if err := o.fail(); err != nil {
		return err
	}
	return o.Store.RenewLeases(ctx, leases, lease)
}

func (o *outageStore) CampaignStatuses(ctx context.Context, ids []int64) ([]models.CampaignStatus, error) {
	if err := o.fail(); err != nil {
		return nil, err
	}
	return o.Store.CampaignStatuses(ctx, ids)
}

func (o *outageStore) FinishCampaignIfDone(ctx context.Context, id int64) (bool, error) {
	if err := o.fail(); err != nil {
		return false, err
	}
	return o.Store.FinishCampaignIfDone(ctx, id)
}

// A database outage mid-send is no delivery outcome: the engine reports the
// database unreachable, stops claiming, holds what it has, and once the
// database is back sends every message exactly once, none deferred, none
// captured instead of sent, every delivery with one attempt. Both ways a
// send touches the database are covered: the capture transport's outbox,
// and the staging switch read before a real send.
func TestDatabaseOutageIsNoOutcome(t *testing.T) {
	const n = 60 // the default rule sends 10 a second
	cases := []struct {
		name      string
		transport func(o *outageStore, real mailer.Transport) mailer.Transport
	}{
		{"capture", func(o *outageStore, _ mailer.Transport) mailer.Transport { return nil }},
		{"staging over relay", func(o *outageStore, real mailer.Transport) mailer.Transport {
			return mailer.Staging(real, mailer.NewCapture(o), mailer.StagingPolicy(o, 0))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, s *models.Store) {
				ctx := context.Background()
				o := &outageStore{Store: s, after: n / 4}
				start := time.Now()
				sink := startMX(t, "127.0.0.1:0", false, nil)
				host, port, _ := strings.Cut(sink.Addr, ":")
				p, _ := strconv.Atoi(port)
				real := mailer.NewRelay(mailer.RelayOptions{HELO: "herald.test", Hosts: []mailer.RelayHost{{Host: host, Port: p, TLS: mailer.TLSNone}}})
				list := seed(t, s, n, []string{"example.org", "example.net"})
				cid := campaign(t, s, list, "news@herald.test", nil, nil)
				e := mailer.New(mailer.Options{Logger: testLogger(t), RootURL: "https://herald.test", Transport: tc.transport(o, real)}, o)
				runEngine(t, e)
				if err := e.StartCampaign(ctx, cid); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 20*time.Second, "the engine to see the outage", func() bool { return !e.Health().DatabaseReachable })
				t.Logf("outage seen at %v after %d sends", time.Since(start).Round(time.Millisecond), o.sends.Load())
				h := e.Health()
				if h.DownSince.IsZero() || !strings.Contains(h.LastError, "connection refused") || !h.Running {
					t.Errorf("Health() during the outage = %+v, want running, down since a time, with the error", h)
				}
				time.Sleep(2 * time.Second)
				o.down.Store(false)
				waitFor(t, 30*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
				t.Logf("campaign finished at %v", time.Since(start).Round(time.Millisecond))
				if h := e.Health(); !h.DatabaseReachable || h.LastClaim.IsZero() {
					t.Errorf("Health() after the outage = %+v, want the database reachable and a claim", h)
				}

				var bad []struct {
					ID       int64
					Status   string
					Attempts int
					LastText string
				}
				if err := s.DB().Raw(`SELECT id, status, attempts, COALESCE(last_text, '') AS last_text FROM deliveries
					WHERE campaign_id = ? AND (status <> 'sent' OR attempts <> 1)`, cid).Scan(&bad).Error; err != nil {
					t.Fatal(err)
				}
				if len(bad) > 0 {
					t.Errorf("%d deliveries not sent at the first attempt, e.g. %+v", len(bad), bad[0])
				}
				out, err := s.Outbox(ctx, models.OutboxQuery{CampaignID: cid, Limit: 2 * n})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]int{}
				if tc.name == "capture" {
					for _, m := range out {
						got[m.RcptTo]++
					}
				} else {
					if len(out) != 0 {
						t.Errorf("%d messages captured in the outbox, want none: staging is off", len(out))
					}
					for _, m := range sink.messages() {
						got[m.To]++
					}
				}
				dups := 0
				for _, c := range got {
					dups += c - 1
				}
				if len(got) != n || dups != 0 {
					t.Errorf("%d recipients got the message (%d twice or more), want %d once each", len(got), dups, n)
				}
			})
		})
	}
}
