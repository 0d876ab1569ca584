package models_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// A change begun with Begin takes every store call made with its context:
// single statements, methods with their own transaction (nested as a
// savepoint) and several calls in a row. Committed, all land with the
// entries; a failing entry, or an End without a Commit, leaves nothing;
// AfterCommit work runs only after a commit.
func TestBeginJoinsEveryStoreWrite(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, "admin@example.com", "", "correct horse battery", models.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		_, tok, err := s.CreateAPIToken(ctx, u.ID, "to-revoke")
		if err != nil {
			t.Fatal(err)
		}
		list := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
		if err := s.CreateList(ctx, list); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			change func(ctx context.Context) error
			state  string // a count that the change moves
			args   []any
		}{
			{"create", func(ctx context.Context) error {
				return s.CreateTemplate(ctx, &models.Template{Name: "probe", Kind: models.TemplateTransactional, Subject: "Hi", HTML: "<p>Hi</p>"})
			}, "SELECT count(*) FROM templates WHERE name = 'probe'", nil},
			{"update", func(ctx context.Context) error {
				l := *list
				l.Name = "Renamed"
				return s.UpdateList(ctx, &l)
			}, "SELECT count(*) FROM lists WHERE name = 'Renamed'", nil},
			{"delete", func(ctx context.Context) error { return s.DeleteAPIToken(ctx, u.ID, tok.ID) },
				"SELECT count(*) FROM api_tokens WHERE id = ?", []any{tok.ID}},
			{"own transaction", func(ctx context.Context) error { return s.ResetDomainRules(ctx) },
				"SELECT count(*) FROM domain_rules", nil},
			{"multi-step", func(ctx context.Context) error {
				if err := s.SetSetting(ctx, models.SettingOrgName, "Probe Org"); err != nil {
					return err
				}
				return s.AddSuppression(ctx, "probe@example.org", models.SuppressManual, "probe")
			}, "SELECT (SELECT count(*) FROM settings WHERE value = 'Probe Org') + (SELECT count(*) FROM suppressions)", nil},
		}
		if err := s.DB().Exec("DELETE FROM domain_rules").Error; err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := count(t, s, tc.state, tc.args...)
				entry := models.AuditEntry{Action: "probe." + tc.name, ObjectType: "probe", Actor: "admin@example.com"}
				run := func(commit func(*models.Tx) error) (woke bool, err error) {
					chg, err := s.Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					defer chg.End()
					if err := tc.change(chg.Ctx()); err != nil {
						t.Fatalf("change: %v", err)
					}
					models.AfterCommit(chg.Ctx(), func() { woke = true })
					err = commit(chg)
					return woke, err
				}
				// Ended without a commit (an early return): nothing stays.
				if woke, _ := run(func(*models.Tx) error { return nil }); woke {
					t.Error("AfterCommit ran although the change was rolled back")
				}
				if got := count(t, s, tc.state, tc.args...); got != before {
					t.Errorf("after End without Commit the state moved %d → %d", before, got)
				}
				// A failing entry: nothing stays.
				breakAudit(t, s)
				_, err := run(func(chg *models.Tx) error { return chg.Commit(entry) })
				if err := s.DB().Exec("ALTER TABLE audit_log_gone RENAME TO audit_log").Error; err != nil {
					t.Fatal(err)
				}
				if err == nil {
					t.Error("Commit with a failing audit write = nil, want an error")
				}
				if got := count(t, s, tc.state, tc.args...); got != before {
					t.Errorf("with a failing audit write the state moved %d → %d", before, got)
				}
				// Committed: the change and its entry.
				var woke bool
				woke, err = run(func(chg *models.Tx) error { return chg.Commit(entry) })
				if err != nil {
					t.Fatal(err)
				}
				if !woke {
					t.Error("AfterCommit did not run after the commit")
				}
				if got := count(t, s, tc.state, tc.args...); got == before {
					t.Errorf("committed change left the state at %d", got)
				}
				if n := count(t, s, "SELECT count(*) FROM audit_log WHERE action = ?", entry.Action); n != 1 {
					t.Errorf("audit rows %q = %d, want 1", entry.Action, n)
				}
			})
		}
	})
}

// AfterCommit work waits for the commit, and runs at once without a change.
func TestAfterCommitWaitsForTheCommit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		var ran []string
		models.AfterCommit(ctx, func() { ran = append(ran, "no change") })
		chg, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer chg.End()
		models.AfterCommit(chg.Ctx(), func() { ran = append(ran, "committed") })
		if got := fmt.Sprint(ran); got != "[no change]" {
			t.Fatalf("before the commit ran = %s, want [no change]", got)
		}
		if err := chg.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ran); got != "[no change committed]" {
			t.Errorf("after the commit ran = %s, want [no change committed]", got)
		}
	})
}
