package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// serve refuses to start under an https root URL without a secret from
// outside the database, and says what to set.
func TestServeRefusesProductionWithoutSecret(t *testing.T) {
	t.Setenv("HERALD_SECRET", "")
	t.Setenv("HERALD_SECRET_FILE", "")
	db := filepath.Join(t.TempDir(), "herald.db")
	var out, errs bytes.Buffer
	err := serve(context.Background(), []string{"-db", db, "-listen", "127.0.0.1:0", "-root-url", "https://mail.example.com"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "HERALD_SECRET") {
		t.Fatalf("serve() = %v, want a refusal naming HERALD_SECRET", err)
	}
	// Nothing was generated and stored in its place.
	s, err := models.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.Setting(context.Background(), models.SettingSecret); v != "" {
		t.Errorf("a secret was stored in the database: %q", v)
	}
}

// With the secret given, a database that ran on its stored secret has its
// DKIM keys re-sealed at start, with a log line, and the stored secret
// still verifies old links.
func TestOpenAdoptsConfiguredSecret(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "herald.db")
	t.Setenv("HERALD_SECRET", "")
	_, s, err := open(ctx, "serve", []string{"-db", db}, &bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Setting(ctx, models.SettingSecret)
	if _, err := s.CreateSendingDomain(ctx, "news.example.com", stored, models.SendingDomainOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	secret := strings.Repeat("k", 40)
	var logs bytes.Buffer
	cfg, s, err := open(ctx, "serve", []string{"-db", db, "-secret", secret, "-root-url", "https://mail.example.com"}, &logs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "re-sealed DKIM keys") || !strings.Contains(logs.String(), "domains=1") {
		t.Errorf("start log = %q, want a line saying 1 domain's keys were re-sealed", logs.String())
	}
	if got := cfg.Secrets(); len(got) != 2 || got[0] != secret || got[1] != stored {
		t.Errorf("Secrets() = %q, want the configured secret, then the stored one", got)
	}
	d, err := s.SendingDomainByName(ctx, "news.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Keys(secret); err != nil {
		t.Errorf("Keys(configured secret) = %v", err)
	}
}
