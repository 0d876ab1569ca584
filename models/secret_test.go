package models_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// A database that ran on its generated secret has its DKIM keys re-sealed
// under the secret given from outside, once; the stored secret is handed
// back for old links.
func TestAdoptSecret(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		stored, err := s.EnsureSecret(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.CreateSendingDomain(ctx, "news.example.com", stored, models.SendingDomainOptions{Ed25519: true})
		if err != nil {
			t.Fatal(err)
		}
		outside := strings.Repeat("o", 40)
		prev, n, err := s.AdoptSecret(ctx, outside)
		if err != nil || prev != stored || n != 1 {
			t.Fatalf("AdoptSecret() = %q, %d, %v; want the stored secret, 1 domain re-sealed", prev, n, err)
		}
		d, err = s.SendingDomain(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if k, err := d.Keys(outside); err != nil || k.RSA == nil || k.Ed25519 == nil {
			t.Errorf("Keys(outside secret) = %v, %v; want both keys", k, err)
		}
		if _, err := d.Keys(stored); err == nil {
			t.Errorf("Keys(stored secret) opened the re-sealed keys; the database's secret must not open them")
		}
		if _, n, err := s.AdoptSecret(ctx, outside); err != nil || n != 0 {
			t.Errorf("second AdoptSecret() re-sealed %d, %v; want 0", n, err)
		}
	})
}

// TOTP secrets sealed under the generated secret are re-sealed too, so
// two-factor sign-in survives the move to an outside secret.
func TestAdoptSecretReSealsTOTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		stored, err := s.EnsureSecret(ctx)
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(ctx, "otp@example.com", "", "a long enough password", models.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", stored); err != nil {
			t.Fatal(err)
		}
		outside := strings.Repeat("o", 40)
		if _, _, err := s.AdoptSecret(ctx, outside); err != nil {
			t.Fatal(err)
		}
		u, _ = s.User(ctx, u.ID)
		if got, err := s.TOTPSecret(u, outside); err != nil || got != "JBSWY3DPEHPK3PXP" {
			t.Errorf("TOTPSecret(outside) = %q, %v; want the secret", got, err)
		}
		if _, err := s.TOTPSecret(u, stored); err == nil {
			t.Error("the stored secret still opens the re-sealed TOTP secret")
		}
	})
}
