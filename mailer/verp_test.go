package mailer_test

import (
	"bytes"
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// TestVERPIgnoresCase: some MTAs change the case of the address they
// return a bounce to. The return paths the engine really sends, as a
// go-smtp MX received them, are bounced to the inbound SMTP server
// uppercased, in mixed case and lowercased, and one in the base64url form
// of addresses handed out before (case intact); each bounce lands on its
// own delivery, and the delivery nobody bounced is left alone.
func TestVERPIgnoresCase(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	const secret = "verp case secret"
	mx := startMX(t, "127.0.0.1:0", true, nil)
	list := seed(t, s, 5, []string{"example.org"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	tr := mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr, HELO: "out.sender.test"})
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{secret}, Transport: tr}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "5 messages at the MX", func() bool { return progress(t, s, cid).Sent == 5 })
	msgs := mx.messages()
	if len(msgs) != 5 {
		t.Fatalf("MX received %d messages, want 5", len(msgs))
	}
	deliveryOf := func(email string) (id int64, status string) {
		row := s.DB().Raw(`SELECT d.id, d.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
			WHERE d.campaign_id = ? AND s.email = ?`, cid, email).Row()
		if err := row.Scan(&id, &status); err != nil {
			t.Fatalf("delivery to %s: %v", email, err)
		}
		return id, status
	}
	inbound := startInbound(t, s, mailer.InboundOptions{Keys: token.NewKeyring(secret), BounceDomains: []string{"sender.test"}})

	legacy := func(m received) string {
		id, _ := deliveryOf(m.To)
		return "b-" + token.NewKeyring(secret).Sign(token.Bounce, id) + "@sender.test"
	}
	bounceTo := []struct {
		name string
		addr func(m received) string
	}{
		{"uppercased", func(m received) string { return strings.ToUpper(m.From) }},
		{"mixed case", func(m received) string { return mixedCase(m.From) }},
		{"lowercased", func(m received) string { return strings.ToLower(m.From) }},
		{"base64url form, case intact", legacy},
	}
	for i, b := range bounceTo {
		m := msgs[i]
		verp := b.addr(m)
		if b.name == "lowercased" && verp != m.From {
			t.Errorf("return path %q is not in lowercase", m.From)
		}
		if (b.name == "uppercased" || b.name == "mixed case") && verp == m.From {
			t.Fatalf("%s return path %q does not change case; the test proves nothing", b.name, m.From)
		}
		dsn := fixture(t, "dsn-hard.eml", map[string]string{"VERP": verp, "RCPT": m.To, "MESSAGE_ID": "<unrelated@example.com>"})
		if err := send(t, inbound, "", verp, dsn); err != nil {
			t.Errorf("bounce to the %s return path %s (sent as %s): %v", b.name, verp, m.From, err)
		}
	}
	for i, m := range msgs {
		want, wantSupp := models.DeliveryBounced, models.SuppressHardBounce
		if i == len(bounceTo) {
			want, wantSupp = models.DeliverySent, ""
		}
		if _, status := deliveryOf(m.To); status != want {
			t.Errorf("delivery to %s = %q, want %q", m.To, status, want)
		}
		if got := suppressed(t, s, m.To); got != wantSupp {
			t.Errorf("suppression of %s = %q, want %q", m.To, got, wantSupp)
		}
	}
	if got := stats(t, s, cid); got.Hard != int64(len(bounceTo)) {
		t.Errorf("campaign hard bounces = %d, want %d", got.Hard, len(bounceTo))
	}

	// The mailto unsubscribe address of the last message, uppercased.
	last := msgs[len(msgs)-1]
	msg, err := mail.ReadMessage(bytes.NewReader(last.Data))
	if err != nil {
		t.Fatal(err)
	}
	lu := msg.Header.Get("List-Unsubscribe")
	i := strings.Index(lu, "<mailto:")
	if i < 0 {
		t.Fatalf("List-Unsubscribe = %q, want a mailto address", lu)
	}
	unsub := lu[i+len("<mailto:"):]
	unsub = strings.ToUpper(unsub[:strings.IndexAny(unsub, "?>")])
	if err := send(t, inbound, "someone@example.org", unsub, []byte("Subject: unsubscribe\r\n\r\nunsubscribe\r\n")); err != nil {
		t.Fatalf("mail to the uppercased unsubscribe address %s: %v", unsub, err)
	}
	var subID int64
	if err := s.DB().Raw("SELECT id FROM subscribers WHERE email = ?", last.To).Scan(&subID).Error; err != nil {
		t.Fatal(err)
	}
	if got := subStatus(t, s, subID, list); got != models.SubUnsubscribed {
		t.Errorf("subscription of %s after mail to %s = %q, want %q", last.To, unsub, got, models.SubUnsubscribed)
	}
}

// mixedCase upper-cases every other byte.
func mixedCase(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i += 2 {
		if 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}
