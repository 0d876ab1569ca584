package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer/bounce"
	"github.com/herald-mail/herald/models"
)

// The bounces page shows, for each bounce, the reason the classifier gave:
// the one recorded with a reported bounce, and for a refusal during
// sending, the classifier's reading of the reply.
func TestBouncesPageShowsReasons(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		fx := testdb.ReportFixture(t, s)
		// A carrier's "550 : User unknown" for m1, classified by the parser
		// and recorded as the mailer records it.
		f, err := os.Open(filepath.Join("..", "mailer", "bounce", "testdata", "carrier-user-unknown.eml"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := bounce.Parse(f)
		f.Close()
		if err != nil || len(rep.Recipients) == 0 {
			t.Fatalf("Parse = %v, %v", rep, err)
		}
		v := rep.Recipients[0]
		if _, err := s.RecordBounce(context.Background(), models.BounceNotice{DeliveryID: fx.Deliveries["m1"],
			Kind: string(v.Kind), Category: string(v.Category), Status: v.Status, Diagnostic: v.Diagnostic,
			Reason: v.Explain()}); err != nil {
			t.Fatal(err)
		}

		p := app.user(models.RoleViewer).get("/deliverability/bounces")
		mustStatus(t, p, 200)
		why := func(email string) string {
			return p.cell(`[data-testid="recent-bounces"] tr[data-email="` + email + `"] [data-col="why"]`)
		}
		if got := why("m1@contoso.example"); !strings.Contains(got, "R11 unknown recipient, no recipient-stage evidence:") ||
			!strings.Contains(got, "not sure enough to suppress") || !strings.Contains(got, "550 : User unknown") {
			t.Errorf("m1's reason = %q, want the recorded R11 reason and the reply", got)
		}
		if got := why("g7@gmail.com"); !strings.Contains(got, "R8 unknown recipient, recipient-stage evidence:") ||
			!strings.Contains(got, "5.1.1") {
			t.Errorf("g7's reason (refused while sending) = %q, want the classifier's R8 reading of 550 5.1.1", got)
		}
		if got := why("a2@icloud.com"); !strings.Contains(got, "recorded before reasons were kept") {
			t.Errorf("a2's reason = %q, want it marked as recorded without one", got)
		}
		if got := p.Doc.Find(`[data-testid="recent-bounces"] tr[data-email="m1@contoso.example"][data-bounce-kind="soft"]`).Length(); got != 1 {
			t.Errorf("m1 rows marked soft = %d, want 1", got)
		}
	})
}
