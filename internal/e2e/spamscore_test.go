package e2e_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/spamdtest"
	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/mailer/spamc"
	"github.com/herald-mail/herald/models"
)

var scoreRE = regexp.MustCompile(`data-testid="spam-score-value">Score (-?[0-9.]+)<`)

// TestSpamScoreThroughTheBinary starts the built binary with HERALD_SPAMD
// at a real spamd: the checklist of the default newsletter, tracked and
// signed, shows a score under 1.0; the campaign then goes out through
// capture, and the message actually sent (pixel, tracked links, DKIM)
// scores the same at spamd, so the checklist measured what recipients get.
func TestSpamScoreThroughTheBinary(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary and spamd")
	}
	ctx := context.Background()
	addr := spamdtest.Start(t)
	dns := e2e.StartDNS(t)
	h := e2e.Start(t, e2e.Options{DNS: dns, Env: []string{"HERALD_SPAMD=" + addr}})
	h.SendingDomain(t, dns, "books.example")
	list := h.List(t, "Readers", "ada@example.org")
	id := h.NewCampaign(t, e2e.Campaign{Name: "Autumn news", Subject: defaults.NewsletterSubject, FromEmail: "news@books.example",
		HTML: strings.Replace(defaults.NewsletterHTML, defaults.Placeholder,
			"Our autumn reading list is out, with twelve new novels and a talk by their translators on the first Friday of October.", 1),
		Lists: []int64{list}})

	code, page := h.Dashboard(t).Get(t, fmt.Sprintf("/campaigns/%d", id))
	m := scoreRE.FindStringSubmatch(page)
	if code != 200 || m == nil {
		t.Fatalf("campaign page = %d without a score", code)
	}
	checklist, _ := strconv.ParseFloat(m[1], 64)
	if checklist >= 1.0 {
		t.Errorf("checklist score %.1f, want under 1.0", checklist)
	}

	h.StartCampaign(t, id)
	h.WaitCampaign(t, id, 60*time.Second, models.CampaignFinished)
	s := h.Store(t)
	msgs, err := s.Outbox(ctx, models.OutboxQuery{CampaignID: id})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("outbox = %d messages, %v", len(msgs), err)
	}
	sent, err := s.OutboxMessage(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sent.Raw, "DKIM-Signature:") || !strings.Contains(sent.HTML, "/t/o/") {
		t.Fatalf("the sent message is not signed or has no open pixel")
	}
	rep, err := (&spamc.Client{Addr: addr}).Report(ctx, []byte(sent.Raw))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checklist score %.1f; the message sent scores %.1f at spamd (%+v)", checklist, rep.Score, rep.Rules)
	if rep.Score >= 1.0 || rep.Score != checklist {
		t.Errorf("sent message scores %.1f, checklist said %.1f: want the same, under 1.0", rep.Score, checklist)
	}
}
