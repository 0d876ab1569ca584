package web

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestDeliverySettingsForm: on both databases, the admin's save stores the
// relay and mailbox sealed and shows them masked; a masked password kept
// as xxxxx keeps the saved one; the relay parser's and the mailbox's
// errors come back on their fields (422, nothing stored); a field the
// environment sets is read-only, says so, and a save leaves it alone;
// viewers and marketers are refused, and a post without the CSRF token
// too.
func TestDeliverySettingsForm(t *testing.T) {
	testdb.Each(t, func(t *testing.T, store *models.Store) {
		app := newTestAppWith(t, store, func(c *config.Config) {
			c.BounceIMAPInterval = "1m"
			c.SetBy = map[string]string{"bounce-imap-interval": "HERALD_BOUNCE_IMAP_INTERVAL in the environment"}
		})
		ctx := context.Background()
		admin := app.user("admin")
		relay := "smtp://ann:pa%24%24@relay.test:587?connections=3&rate=14"
		p := admin.postForm("/settings/delivery", url.Values{"transport": {"relay"}, "relay": {relay},
			"bounce_mailbox": {"imaps://b%40x.test:mbox-pw@imap.test/Bounces"}, "bounce_interval": {"5s"}, "bounce_move": {"Done"}})
		if p.StatusCode != 200 || !strings.Contains(p.Body, "Delivery settings saved") {
			t.Fatalf("save = %d: %s", p.StatusCode, p.Body)
		}
		secrets := []string{strings.Repeat("s", 32)}
		d, err := store.DeliverySettings(ctx, secrets)
		if err != nil {
			t.Fatal(err)
		}
		if d.Transport != "relay" || d.Relay != relay || d.BounceMailbox != "imaps://b%40x.test:mbox-pw@imap.test/Bounces" || d.BounceMove != "Done" {
			t.Errorf("stored %+v", d)
		}
		if d.BounceInterval != "" {
			t.Errorf("bounce interval stored %q; the environment sets it, so the form's must be ignored", d.BounceInterval)
		}
		if strings.Contains(p.Body, "pa$$") || strings.Contains(p.Body, "pa%24%24") || strings.Contains(p.Body, "mbox-pw") {
			t.Error("the page shows a password in clear")
		}
		if got := p.Doc.Find(`[data-testid="relay"]`).Text(); !strings.Contains(got, "ann:xxxxx@relay.test:587") {
			t.Errorf("relay shown as %q", got)
		}
		if !strings.Contains(p.Body, "Set by HERALD_BOUNCE_IMAP_INTERVAL in the environment") {
			t.Error("the page does not say the environment sets the poll interval")
		}
		if _, ro := p.Doc.Find(`input[name="bounce_interval"]`).Attr("readonly"); !ro {
			t.Error("the poll interval set by the environment is not read-only")
		}

		// Saving the masked form back keeps the passwords; a new query is taken.
		shown := strings.Replace(p.Doc.Find(`[data-testid="relay"]`).Text(), "rate=14", "rate=20", 1)
		mbox, _ := p.Doc.Find(`[data-testid="bounce-mailbox"]`).Attr("value")
		p = admin.postForm("/settings/delivery", url.Values{"transport": {"relay"}, "relay": {shown}, "bounce_mailbox": {mbox}, "bounce_move": {"Done"}})
		if p.StatusCode != 200 {
			t.Fatalf("masked save = %d: %s", p.StatusCode, p.Body)
		}
		// The same URL as typed, with the new rate (the password's escaping may differ).
		sameURL := func(got, want string) bool {
			g, err1 := url.Parse(got)
			w, err2 := url.Parse(want)
			return err1 == nil && err2 == nil && g.Redacted() == w.Redacted() && g.User.String() == w.User.String()
		}
		newRelay := strings.Replace(relay, "rate=14", "rate=20", 1)
		if d, _ := store.DeliverySettings(ctx, secrets); !sameURL(d.Relay, newRelay) ||
			d.BounceMailbox != "imaps://b%40x.test:mbox-pw@imap.test/Bounces" {
			t.Errorf("after a masked save: relay %q mailbox %q; want the passwords kept", d.Relay, d.BounceMailbox)
		}

		for _, tc := range []struct {
			form  url.Values
			field string
			want  string
		}{
			{url.Values{"transport": {"relay"}, "relay": {"smtp://relay.test:587?speed=9"}}, "relay", `unknown setting "speed"`},
			{url.Values{"transport": {"relay"}, "relay": {"smtp://relay.test:587?connections=0"}}, "relay", "connections="},
			{url.Values{"transport": {"relay"}, "relay": {"smtp://bob:xxxxx@other.test:587"}}, "relay", "type the password"},
			{url.Values{"transport": {"relay"}, "relay": {""}}, "relay", "needs a relay URL"},
			{url.Values{"transport": {"pigeon"}}, "transport", "Choose capture, direct or relay"},
			{url.Values{"transport": {"capture"}, "bounce_mailbox": {"pop3://u:p@h"}}, "bounce_mailbox", "imaps://user:password@host:993/INBOX"},
		} {
			p := admin.postForm("/settings/delivery", tc.form)
			if p.StatusCode != 422 {
				t.Errorf("%v = %d, want 422", tc.form, p.StatusCode)
				continue
			}
			if got := p.Doc.Find(`[data-testid="err-` + tc.field + `"]`).Text(); !strings.Contains(got, tc.want) {
				t.Errorf("%v: %s error %q, want %q", tc.form, tc.field, got, tc.want)
			}
		}
		if d2, _ := store.DeliverySettings(ctx, secrets); !sameURL(d2.Relay, newRelay) {
			t.Errorf("a refused save changed the relay to %q", d2.Relay)
		}
		var n int64
		store.DB().Raw("SELECT COUNT(*) FROM audit_log WHERE action = 'settings.update' AND object_id LIKE 'delivery.%'").Scan(&n)
		if n != 5 { // transport, relay, mailbox, move; then the relay's rate
			t.Errorf("%d audit entries for delivery settings, want 5", n)
		}

		for _, role := range []string{"viewer", "marketer"} {
			c := app.user(role)
			if p := c.get("/settings/delivery"); p.StatusCode != 403 {
				t.Errorf("%s GET = %d, want 403", role, p.StatusCode)
			}
			if p := c.postForm("/settings/delivery", url.Values{"transport": {"direct"}}); p.StatusCode != 403 {
				t.Errorf("%s POST = %d, want 403", role, p.StatusCode)
			}
		}
		if p := admin.postRaw("/settings/delivery", url.Values{"transport": {"direct"}}); p.StatusCode != 403 {
			t.Errorf("POST without CSRF = %d, want 403", p.StatusCode)
		}
	})
}
