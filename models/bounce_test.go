package models_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// sentCampaigns creates n campaigns to one list with one subscriber and
// returns the subscriber and the id of the delivery each campaign sent.
func sentCampaigns(t *testing.T, s *models.Store, email string, n int) (int64, []int64) {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	sub := &models.Subscriber{Email: email}
	if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceForm}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range n {
		c := &models.Campaign{Name: fmt.Sprint("c", i), FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
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
		cl, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "t", Lease: time.Minute, Limit: 10, CampaignIDs: []int64{c.ID}})
		if err != nil || len(cl) != 1 {
			t.Fatalf("ClaimDeliveries() = %d rows, %v; want 1", len(cl), err)
		}
		if _, err := s.RecordOutcomes(ctx, []models.Outcome{{ID: cl[0].ID, LeaseGen: cl[0].LeaseGen, CampaignID: c.ID, Status: models.DeliverySent,
			Attempted: true, Code: 250, MessageID: fmt.Sprintf("<m%d@example.com>", cl[0].ID), At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cl[0].ID)
	}
	return sub.ID, ids
}

func isSuppressed(t *testing.T, s *models.Store, email string) bool {
	t.Helper()
	var n int64
	if err := s.DB().Raw("SELECT COUNT(*) FROM suppressions WHERE value_hash = ?", models.SuppressionHash(email)).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestSoftBouncesSuppressAfterThree(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, d := sentCampaigns(t, s, "soft@example.net", 3)
		soft := func(id int64) *models.BounceResult {
			t.Helper()
			r, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: id, Kind: models.BounceSoft, Status: "4.2.2", Category: "mailbox_full"})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := soft(d[0]); r.Suppressed {
			t.Fatal("suppressed after one soft bounce")
		}
		if r := soft(d[0]); !r.Duplicate {
			t.Error("second soft bounce of the same delivery: Duplicate = false, want true")
		}
		if r := soft(d[1]); r.Suppressed {
			t.Fatal("suppressed after two soft bounces")
		}
		if r := soft(d[2]); !r.Suppressed || !isSuppressed(t, s, "soft@example.net") {
			t.Fatalf("not suppressed after three soft bounces: %+v", r)
		}
	})
}

func TestSoftBounceCountResetsAfterSuccess(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, d := sentCampaigns(t, s, "flaky@example.net", 4)
		// d[2] went through (no bounce); soft bounces before it no longer
		// count, so d[0], d[1] and d[3] together do not reach the limit.
		for _, id := range []int64{d[0], d[1], d[3]} {
			if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: id, Kind: models.BounceSoft}); err != nil {
				t.Fatal(err)
			}
		}
		if isSuppressed(t, s, "flaky@example.net") {
			t.Fatal("suppressed although a delivery succeeded between the soft bounces")
		}
	})
}

func TestComplaintWithoutDelivery(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		subID, _ := sentCampaigns(t, s, "angry@example.net", 1)
		r, err := s.RecordComplaint(ctx, models.BounceNotice{Email: "Angry@example.net", Category: "abuse", RemoteMTA: "fbl.example.net"})
		if err != nil {
			t.Fatal(err)
		}
		if r.SubscriberID != subID || r.Unsubscribed != 1 || !r.Suppressed {
			t.Fatalf("RecordComplaint() = %+v, want subscriber %d unsubscribed from 1 list and suppressed", r, subID)
		}
		// An address that is no subscriber is still suppressed.
		if _, err := s.RecordComplaint(ctx, models.BounceNotice{Email: "stranger@example.net", Category: "abuse"}); err != nil {
			t.Fatal(err)
		}
		if !isSuppressed(t, s, "stranger@example.net") {
			t.Error("stranger not suppressed after a complaint")
		}
		if brk, _, err := s.VerifyConsents(ctx); err != nil || brk != nil {
			t.Fatalf("VerifyConsents() = %+v, %v", brk, err)
		}
		if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: 424242, Kind: models.BounceHard}); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("RecordBounce of an unknown delivery = %v, want ErrNotFound", err)
		}
	})
}

func TestDeliveryWithMessageID(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, ids := sentCampaigns(t, s, "mid@example.com", 2)
		for _, mid := range []string{fmt.Sprintf("<m%d@example.com>", ids[0]), fmt.Sprintf("m%d@example.com", ids[0])} {
			d, err := s.DeliveryWithMessageID(ctx, ids[0], mid)
			if err != nil || d.ID != ids[0] {
				t.Errorf("DeliveryWithMessageID(%d, %q) = %v, %v; want delivery %d", ids[0], mid, d, err, ids[0])
			}
		}
		// Another delivery's id with this Message-ID, and an empty one.
		for _, c := range []struct {
			id  int64
			mid string
		}{{ids[1], fmt.Sprintf("<m%d@example.com>", ids[0])}, {ids[0], " <> "}} {
			if d, err := s.DeliveryWithMessageID(ctx, c.id, c.mid); !errors.Is(err, models.ErrNotFound) {
				t.Errorf("DeliveryWithMessageID(%d, %q) = %v, %v; want ErrNotFound", c.id, c.mid, d, err)
			}
		}
	})
}
