package models_test

import (
	"context"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// A bounce keeps the classifier's reason, and the recent-bounces list
// shows it beside the address; refusals during sending come with their
// reply for the caller to classify.
func TestRecentBounces(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		fx := testdb.ReportFixture(t, s)
		const reason = "R8 unknown recipient, recipient-stage evidence: the recipient is unknown and the server refused it at RCPT TO"
		if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: fx.Deliveries["m1"], Kind: models.BounceHard,
			Category: "user_unknown", Status: "5.1.1", Diagnostic: "550 5.1.1 User unknown", Reason: reason}); err != nil {
			t.Fatal(err)
		}
		w, err := s.ReportWindow(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.RecentBounces(ctx, w, 50)
		if err != nil {
			t.Fatal(err)
		}
		byEmail := map[string]models.RecentBounce{}
		for _, b := range got {
			byEmail[b.Email] = b
		}
		if len(got) != 5 {
			t.Errorf("got %d recent bounces %+v, want 5 (a2, g4, y2, m1 reported; g7 refused while sending)", len(got), got)
		}
		m1 := byEmail["m1@contoso.example"]
		if m1.Reason != reason || m1.Kind != models.BounceHard || m1.CampaignName != "March news" || m1.SMTP {
			t.Errorf("m1 = %+v, want the hard bounce with its reason and campaign", m1)
		}
		if a2 := byEmail["a2@icloud.com"]; a2.Reason != "" || a2.Category != "user_unknown" {
			t.Errorf("a2 = %+v, want a bounce recorded without a reason", a2)
		}
		g7 := byEmail["g7@gmail.com"]
		if !g7.SMTP || g7.Code != 550 || g7.Status != "5.1.1" || g7.BounceID != 0 || g7.DeliveryID != fx.Deliveries["g7"] {
			t.Errorf("g7 = %+v, want the SMTP refusal 550 5.1.1 of its delivery", g7)
		}
		for i := 1; i < len(got); i++ {
			if got[i].At.After(got[i-1].At) {
				t.Errorf("not newest first: %v before %v", got[i-1].At, got[i].At)
			}
		}
		if few, err := s.RecentBounces(ctx, w, 2); err != nil || len(few) != 2 {
			t.Errorf("RecentBounces(limit 2) = %d rows, %v; want 2", len(few), err)
		}
	})
}
