package web

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// An audited dashboard action commits with its audit entry or not at all:
// with the audit table gone (so every entry fails to write) each action
// below leaves the database as it was; with the table back the same
// request makes the change and writes its entry. One case per kind of
// store write: a create, an update, a delete, a multi-step change (a
// delete and inserts in the store's own transaction), several entries in
// one change, and queued messages (a test send).
func TestAuditedActionsCommitWithTheirEntry(t *testing.T) {
	testdb.Each(t, func(t *testing.T, store *models.Store) {
		app := newTestApp(t, store)
		admin := app.user(models.RoleAdmin)
		ctx := context.Background()
		u, err := store.UserByEmail(ctx, "admin@example.com")
		if err != nil {
			t.Fatal(err)
		}
		_, tok, err := store.CreateAPIToken(ctx, u.ID, "to-revoke")
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateDomainRule(ctx, &models.DomainRule{Name: "probe-rule", Domains: "probe.example", PerMinute: 10, MaxConnections: 1}); err != nil {
			t.Fatal(err)
		}
		tpl := &models.Template{Name: "probe", Kind: models.TemplateTransactional, Subject: "Hi", HTML: "<p>Hi</p>"}
		if err := store.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		cp := &models.Campaign{Name: "probe campaign", TemplateID: &tpl.ID, Subject: "Hi", FromEmail: "news@example.com"}
		if err := store.CreateCampaign(ctx, cp, nil); err != nil {
			t.Fatal(err)
		}
		count := func(q string, args ...any) string {
			t.Helper()
			var n int64
			if err := store.DB().Raw(q, args...).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(n)
		}
		cases := []struct {
			name, path, action string
			form               url.Values
			state              func() string
		}{
			{"create", "/settings/tokens", "token.create", url.Values{"name": {"probe-token"}},
				func() string { return count("SELECT count(*) FROM api_tokens WHERE name = 'probe-token'") }},
			{"update", "/deliverability/hygiene/staging", "staging.on", url.Values{"staging": {"on"}},
				func() string {
					return count("SELECT count(*) FROM settings WHERE key = ? AND value = 'on'", models.SettingStaging)
				}},
			{"delete", fmt.Sprintf("/settings/tokens/%d/delete", tok.ID), "token.delete", url.Values{},
				func() string { return count("SELECT count(*) FROM api_tokens WHERE id = ?", tok.ID) }},
			{"multi-step", "/deliverability/rules/reset", "domain_rule.reset", url.Values{},
				func() string { return count("SELECT count(*) FROM domain_rules WHERE name = 'probe-rule'") }},
			{"several entries", "/settings", "settings.update", url.Values{"org_name": {"Probe Org"}, "postal_address": {"1 Probe Street"}, "tracking_mode": {"full"}},
				func() string {
					return count("SELECT count(*) FROM settings WHERE value IN ('Probe Org', '1 Probe Street')")
				}},
			{"queued messages", fmt.Sprintf("/campaigns/%d/test", cp.ID), "campaign.test", url.Values{"emails": {"a@example.org, b@example.org"}},
				func() string { return count("SELECT count(*) FROM deliveries") }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := tc.state()
				entries := count("SELECT count(*) FROM audit_log WHERE action = ?", tc.action)
				rename(t, store, "audit_log", "audit_log_gone")
				p := admin.postForm(tc.path, tc.form)
				rename(t, store, "audit_log_gone", "audit_log")
				if p.StatusCode < 500 {
					t.Errorf("POST %s with a failing audit write: status %d, want a server error", tc.path, p.StatusCode)
				}
				if got := tc.state(); got != before {
					t.Errorf("POST %s with a failing audit write changed the state %s → %s; want it rolled back", tc.path, before, got)
				}
				// The same request with the audit table back: the change
				// and its entry, so the request above was one that changes.
				if p := admin.postForm(tc.path, tc.form); p.StatusCode >= 400 {
					t.Fatalf("POST %s: status %d: %.300s", tc.path, p.StatusCode, p.Body)
				}
				if got := tc.state(); got == before {
					t.Errorf("POST %s changed nothing (state %s); the case does not exercise a change", tc.path, got)
				}
				if got := count("SELECT count(*) FROM audit_log WHERE action = ?", tc.action); got == entries {
					t.Errorf("audit entries %q = %s after the change, want more", tc.action, got)
				}
			})
		}
	})
}

func rename(t *testing.T, store *models.Store, from, to string) {
	t.Helper()
	if err := store.DB().Exec("ALTER TABLE " + from + " RENAME TO " + to).Error; err != nil {
		t.Fatal(err)
	}
}
