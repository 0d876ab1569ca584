package models_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// signer makes distinct tokens per row, as the web's keyring signer does.
func signer(kind string) models.LinkSigner {
	n := 0
	return func(id int64) string { n++; return fmt.Sprintf("%s-%d-%d", kind, id, n) }
}

// TestInvitationLinkIsSingleUseAndExpires: an invitation's link creates
// the account once; the same link, another row's link, a withdrawn or an
// expired invitation are refused with the reason.
func TestInvitationLinkIsSingleUseAndExpires(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		sign := signer("inv")
		inv, tok, err := s.CreateInvitation(ctx, "New.Person@Example.com", models.RoleMarketer, "Ada", time.Hour, sign)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Email != "new.person@example.com" || inv.TokenHash == tok || inv.TokenHash == "" {
			t.Fatalf("invitation = %+v (token %q): want the address lower-cased and only the token's hash stored", inv, tok)
		}
		if p, err := s.PendingInvitations(ctx); err != nil || len(p) != 1 {
			t.Fatalf("pending = %v, %v; want the one", p, err)
		}
		if _, err := s.Invitation(ctx, inv.ID, tok+"x"); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("another token for the row: %v, want ErrNotFound", err)
		}
		u, err := s.AcceptInvitation(ctx, inv.ID, tok, "New Person", "a long enough password")
		if err != nil {
			t.Fatal(err)
		}
		if u.Role != models.RoleMarketer || u.Name != "New Person" {
			t.Errorf("user = %+v", u)
		}
		if _, err := s.Authenticate(ctx, "new.person@example.com", "a long enough password"); err != nil {
			t.Errorf("sign in with the chosen password: %v", err)
		}
		if _, err := s.AcceptInvitation(ctx, inv.ID, tok, "Other", "another long password"); !errors.Is(err, models.ErrLinkUsed) {
			t.Errorf("second use: %v, want ErrLinkUsed", err)
		}
		if _, _, err := s.CreateInvitation(ctx, "new.person@example.com", models.RoleViewer, "Ada", time.Hour, sign); !errors.Is(err, models.ErrConflict) {
			t.Errorf("inviting an existing account: %v, want ErrConflict", err)
		}

		// A newer invitation withdraws the older; revoking withdraws.
		old, oldTok, _ := s.CreateInvitation(ctx, "b@example.com", models.RoleViewer, "Ada", time.Hour, sign)
		newer, newTok, err := s.CreateInvitation(ctx, "b@example.com", models.RoleViewer, "Ada", time.Hour, sign)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Invitation(ctx, old.ID, oldTok); !errors.Is(err, models.ErrLinkRevoked) {
			t.Errorf("older invitation: %v, want ErrLinkRevoked", err)
		}
		if _, err := s.RevokeInvitation(ctx, newer.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AcceptInvitation(ctx, newer.ID, newTok, "", "a long enough password"); !errors.Is(err, models.ErrLinkRevoked) {
			t.Errorf("revoked invitation: %v, want ErrLinkRevoked", err)
		}

		exp, expTok, err := s.CreateInvitation(ctx, "c@example.com", models.RoleViewer, "Ada", time.Millisecond, sign)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if _, err := s.AcceptInvitation(ctx, exp.ID, expTok, "", "a long enough password"); !errors.Is(err, models.ErrLinkExpired) {
			t.Errorf("expired invitation: %v, want ErrLinkExpired", err)
		}
		if p, _ := s.PendingInvitations(ctx); len(p) != 0 {
			t.Errorf("pending after use, revocation and expiry = %+v, want none", p)
		}
		if _, err := s.UserByEmail(ctx, "c@example.com"); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("an expired invitation made an account: %v", err)
		}
	})
}

// TestPasswordResetIsSingleUseEndsSessionsAndExpires.
func TestPasswordResetIsSingleUseEndsSessionsAndExpires(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, "r@example.com", "", "the old password", models.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		sign := signer("reset")
		first, err := s.CreatePasswordReset(ctx, u.ID, "192.0.2.1", time.Hour, sign)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.CreatePasswordReset(ctx, u.ID, "192.0.2.1", time.Hour, sign)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PasswordResetUser(ctx, 1, first); !errors.Is(err, models.ErrLinkUsed) {
			t.Errorf("the older link after a newer one: %v, want ErrLinkUsed", err)
		}
		if _, err := s.ResetPassword(ctx, 2, tok, "short"); err == nil {
			t.Error("a short password was accepted")
		}
		got, err := s.ResetPassword(ctx, 2, tok, "the new password")
		if err != nil {
			t.Fatal(err)
		}
		if got.SessionGen != u.SessionGen+1 {
			t.Errorf("session generation = %d, want %d: other sessions must end", got.SessionGen, u.SessionGen+1)
		}
		if _, err := s.Authenticate(ctx, "r@example.com", "the new password"); err != nil {
			t.Errorf("new password: %v", err)
		}
		if _, err := s.Authenticate(ctx, "r@example.com", "the old password"); !errors.Is(err, models.ErrBadCredentials) {
			t.Errorf("old password still works: %v", err)
		}
		if _, err := s.ResetPassword(ctx, 2, tok, "a third password"); !errors.Is(err, models.ErrLinkUsed) {
			t.Errorf("reused link: %v, want ErrLinkUsed", err)
		}
		short, err := s.CreatePasswordReset(ctx, u.ID, "", time.Millisecond, sign)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if _, err := s.ResetPassword(ctx, 3, short, "a third password"); !errors.Is(err, models.ErrLinkExpired) {
			t.Errorf("expired link: %v, want ErrLinkExpired", err)
		}
		if _, err := s.PasswordResetUser(ctx, 3, "reset-3-99"); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("a token not issued: %v, want ErrNotFound", err)
		}
	})
}

// TestTOTPAndRecoveryCodes: the secret is stored sealed; enabling makes
// ten recovery codes, each good once; a TOTP step is good once; disabling
// clears everything.
func TestTOTPAndRecoveryCodes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const server = "0123456789abcdef0123456789abcdef"
		u, err := s.CreateUser(ctx, "t@example.com", "", "a long enough password", models.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", server); err != nil {
			t.Fatal(err)
		}
		u, _ = s.User(ctx, u.ID)
		if u.TwoFactor() || u.TOTPSecret == "" || u.TOTPSecret == "JBSWY3DPEHPK3PXP" {
			t.Fatalf("pending user = enabled %v, stored secret %q: want off and sealed", u.TwoFactor(), u.TOTPSecret)
		}
		if got, err := s.TOTPSecret(u, server); err != nil || got != "JBSWY3DPEHPK3PXP" {
			t.Fatalf("TOTPSecret = %q, %v", got, err)
		}
		if _, err := s.TOTPSecret(u, "another server secret, 32 chars!"); err == nil {
			t.Error("the secret opened under another server secret")
		}
		if err := s.UseTOTPStep(ctx, u.ID, 100); !errors.Is(err, models.ErrBadCode) {
			t.Errorf("a step before 2FA is on: %v, want ErrBadCode", err)
		}
		codes, err := s.EnableTOTP(ctx, u.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != models.RecoveryCodeCount {
			t.Fatalf("%d recovery codes, want %d", len(codes), models.RecoveryCodeCount)
		}
		seen := map[string]bool{}
		for _, c := range codes {
			if seen[c] || len(c) != 11 {
				t.Errorf("recovery code %q: want 11 characters, all distinct", c)
			}
			seen[c] = true
		}
		var hashes []string
		s.DB().Raw("SELECT code_hash FROM recovery_codes WHERE user_id = ?", u.ID).Scan(&hashes)
		for _, h := range hashes {
			if seen[h] {
				t.Errorf("a recovery code is stored in plain text")
			}
		}
		if err := s.SetPendingTOTP(ctx, u.ID, "AAAA", server); !errors.Is(err, models.ErrConflict) {
			t.Errorf("replacing the secret while on: %v, want ErrConflict", err)
		}
		if err := s.UseTOTPStep(ctx, u.ID, 100); !errors.Is(err, models.ErrBadCode) {
			t.Errorf("the step used to confirm, again: %v, want ErrBadCode", err)
		}
		if err := s.UseTOTPStep(ctx, u.ID, 101); err != nil {
			t.Errorf("the next step: %v", err)
		}
		if err := s.UseTOTPStep(ctx, u.ID, 101); !errors.Is(err, models.ErrBadCode) {
			t.Errorf("a replayed step: %v, want ErrBadCode", err)
		}
		// Typed with capitals and spaces: still the code.
		typed := " " + codes[3][:5] + " " + codes[3][6:] + " "
		if err := s.UseRecoveryCode(ctx, u.ID, typed); err != nil {
			t.Errorf("recovery code %q: %v", typed, err)
		}
		if err := s.UseRecoveryCode(ctx, u.ID, codes[3]); !errors.Is(err, models.ErrBadCode) {
			t.Errorf("the same recovery code twice: %v, want ErrBadCode", err)
		}
		if err := s.UseRecoveryCode(ctx, u.ID, "aaaaa-bbbbb"); !errors.Is(err, models.ErrBadCode) {
			t.Errorf("a made-up code: %v, want ErrBadCode", err)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, u.ID); n != models.RecoveryCodeCount-1 {
			t.Errorf("codes left = %d, want %d", n, models.RecoveryCodeCount-1)
		}
		fresh, err := s.NewRecoveryCodes(ctx, u.ID)
		if err != nil || len(fresh) != models.RecoveryCodeCount {
			t.Fatalf("NewRecoveryCodes = %d, %v", len(fresh), err)
		}
		if err := s.UseRecoveryCode(ctx, u.ID, codes[0]); !errors.Is(err, models.ErrBadCode) {
			t.Errorf("an old code after new ones: %v, want ErrBadCode", err)
		}
		if err := s.DisableTOTP(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		u, _ = s.User(ctx, u.ID)
		if u.TwoFactor() || u.TOTPSecret != "" {
			t.Errorf("after disable: %+v", u)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, u.ID); n != 0 {
			t.Errorf("codes left after disable = %d", n)
		}
	})
}

// TestDeleteUserWithTwoFactorAndResets: a user with recovery codes and
// reset links can be removed, and leaves none of them behind.
func TestDeleteUserWithTwoFactorAndResets(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.CreateUser(ctx, "admin@example.com", "", "a long enough password", models.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(ctx, "gone@example.com", "", "a long enough password", models.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", "0123456789abcdef0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnableTOTP(ctx, u.ID, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreatePasswordReset(ctx, u.ID, "", time.Hour, signer("r")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		var n int64
		s.DB().Raw("SELECT (SELECT COUNT(*) FROM recovery_codes) + (SELECT COUNT(*) FROM password_resets)").Scan(&n)
		if n != 0 {
			t.Errorf("%d recovery codes and resets left after deleting their user", n)
		}
	})
}
