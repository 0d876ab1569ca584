package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// TestTokenCreate: herald token create prints a token that the API accepts
// as that user, and refuses an unknown user or a missing email with a
// message that says what to do.
func TestTokenCreate(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "herald.db")
	flags := []string{"-db", db, "-secret", strings.Repeat("k", 32)}
	var out, errOut bytes.Buffer
	if err := run(ctx, append([]string{"user", "create", "--email", "Ops@Example.com", "--role", "marketer", "--password", "correct horse battery"}, flags...),
		&out, &errOut); err != nil {
		t.Fatalf("user create: %v (%s)", err, errOut.String())
	}
	out.Reset()
	if err := run(ctx, append([]string{"token", "create", "--email", "ops@example.com", "--name", "deploy"}, flags...), &out, &errOut); err != nil {
		t.Fatalf("token create: %v (%s)", err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, "hrld_") || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token create printed %q, want one token", out.String())
	}

	s, err := models.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.UserByAPIToken(ctx, tok)
	if err != nil || u.Email != "ops@example.com" || u.Role != models.RoleMarketer {
		t.Fatalf("UserByAPIToken(printed token) = %+v, %v; want the marketer ops@example.com", u, err)
	}
	toks, err := s.APITokens(ctx, u.ID)
	if err != nil || len(toks) != 1 || toks[0].Name != "deploy" {
		t.Errorf("APITokens = %+v, %v; want one named deploy", toks, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "--email", "nobody@example.com"}, "no user has the email nobody@example.com; create one first with herald user create"},
		{[]string{"token", "create"}, "token create needs the user's email"},
		{[]string{"token", "list"}, "unknown token command; try: herald token create"},
	} {
		out.Reset()
		err := run(ctx, append(c.args, flags...), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("herald %s = %v, want an error saying %q", strings.Join(c.args, " "), err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("herald %s printed %q, want nothing on stdout", strings.Join(c.args, " "), out.String())
		}
	}
}

// TestUserReset2FA: herald user reset-2fa turns a user's two-factor
// sign-in off and records it in the audit log.
func TestUserReset2FA(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "herald.db")
	secret := strings.Repeat("k", 32)
	flags := []string{"-db", db, "-secret", secret}
	var out, errOut bytes.Buffer
	if err := run(ctx, append([]string{"user", "create", "--email", "boss@example.com", "--password", "correct horse battery"}, flags...), &out, &errOut); err != nil {
		t.Fatalf("user create: %v (%s)", err, errOut.String())
	}
	s, err := models.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, _ := s.UserByEmail(ctx, "boss@example.com")
	if err := s.SetPendingTOTP(ctx, u.ID, "JBSWY3DPEHPK3PXP", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnableTOTP(ctx, u.ID, 1); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, append([]string{"user", "reset-2fa", "--email", "Boss@example.com"}, flags...), &out, &errOut); err != nil {
		t.Fatalf("user reset-2fa: %v (%s)", err, errOut.String())
	}
	if u, _ = s.User(ctx, u.ID); u.TwoFactor() || u.TOTPSecret != "" {
		t.Errorf("after reset-2fa: 2FA %v, secret %q; want both gone", u.TwoFactor(), u.TOTPSecret)
	}
	var actions []string
	s.DB().Raw("SELECT action FROM audit_log").Scan(&actions)
	if strings.Join(actions, " ") != "2fa.reset" {
		t.Errorf("audit log = %v, want one 2fa.reset", actions)
	}
	if err := run(ctx, append([]string{"user", "reset-2fa", "--email", "nobody@example.com"}, flags...), &out, &errOut); err == nil || !strings.Contains(err.Error(), "no user has the email") {
		t.Errorf("unknown user: %v", err)
	}
}
