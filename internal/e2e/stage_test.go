package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
)

// TestRefusalStageDecides: the same words without an enhanced code,
// "550 Requested action not taken: mailbox unavailable", are a hard bounce
// when they answer RCPT TO (they are about the address) and a soft one
// when they answer the end of data (they may be about the message): the
// engine tells the classifier which command a refusal answered.
func TestRefusalStageDecides(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	refusal := func() *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.NoEnhancedCode, Message: "Requested action not taken: mailbox unavailable"}
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{
		Rcpt: func(rcpt string) *smtp.SMTPError {
			if strings.HasPrefix(rcpt, "atrcpt@") {
				return refusal()
			}
			return nil
		},
		Data: func(rcpt string, _ int) *smtp.SMTPError {
			if strings.HasPrefix(rcpt, "atdata@") {
				return refusal()
			}
			return nil
		},
	})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Readers", "atrcpt@alpha.test", "atdata@alpha.test", "fine@alpha.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	h.WaitCampaign(t, id, 60*time.Second, "finished")

	s := h.Store(t)
	var rows []struct{ Email, Kind string }
	if err := s.DB().Raw(`SELECT sb.email, b.kind FROM bounces b JOIN subscribers sb ON sb.id = b.subscriber_id
		WHERE b.campaign_id = ? ORDER BY sb.email`, id).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Email] = r.Kind
	}
	if got["atrcpt@alpha.test"] != "hard" || got["atdata@alpha.test"] != "soft" || len(got) != 2 {
		t.Errorf("bounce kinds = %v; want atrcpt hard, atdata soft", got)
	}
	ctx := context.Background()
	for addr, want := range map[string]bool{"atrcpt@alpha.test": true, "atdata@alpha.test": false, "fine@alpha.test": false} {
		if ok, err := s.IsSuppressed(ctx, addr); err != nil || ok != want {
			t.Errorf("IsSuppressed(%s) = %v, %v; want %v", addr, ok, err, want)
		}
	}
}
