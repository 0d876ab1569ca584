package mailer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// A template that goes over the limits only with one subscriber's data
// passes the save-time check, and in the send fails that recipient alone,
// with the limit in the delivery's text; the others are sent.
func TestTemplateLimitFailsOneRecipient(t *testing.T) {
	s := testdb.SQLite(t)
	ctx := context.Background()
	const heavy = 2
	list := testdb.Readers(t, s, "limits", 4, func(k int) testdb.Reader {
		n := 3
		if k == heavy {
			n = 5000 // 5000 × 5000 iterations
		}
		var items []string
		for i := range n {
			items = append(items, fmt.Sprint(i))
		}
		return testdb.Reader{Email: fmt.Sprintf("user%d@example.org", k), Name: fmt.Sprintf("User %d", k),
			Attributes: `{"items":[` + strings.Join(items, ",") + `]}`}
	})
	body := `<p>{{range .Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}.{{end}}{{end}}</p>`
	if err := mailer.CheckTemplate("Hi", body, ""); err != nil {
		t.Fatalf("CheckTemplate() = %v, want nil", err)
	}
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "loops", Subject: "Hi", HTML: body}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	c := &models.Campaign{Name: "loops", TemplateID: &tpl.ID, FromName: "Herald", FromEmail: "news@acme.test"}
	if err := s.CreateCampaign(ctx, c, []int64{list}); err != nil {
		t.Fatal(err)
	}
	e := mailer.New(mailer.Options{Logger: quietLogger(), RootURL: "https://herald.acme.test"}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "campaign to finish", func() bool { return progress(t, s, c.ID).Status == models.CampaignFinished })
	if p := progress(t, s, c.ID); p.Sent != 3 || p.Failed != 1 {
		t.Fatalf("progress = %+v, want 3 sent and 1 failed", p.Counters)
	}
	failed, err := s.DeliveriesOfCampaign(ctx, c.ID, models.DeliveryFailed, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || !strings.Contains(failed[0].LastText, "limit of 1000000 steps") {
		t.Fatalf("failed deliveries = %+v, want one whose text names the step limit", failed)
	}
	t.Logf("failed delivery: %s", failed[0].LastText)
}
