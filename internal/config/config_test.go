package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHostname(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		args []string
		env  map[string]string
		want string
		err  string
	}{
		{nil, nil, "[127.0.0.1]", ""},
		{[]string{"-root-url", "https://News.Example.com/"}, nil, "news.example.com", ""},
		{[]string{"-root-url", "http://[2001:db8::1]:8080"}, nil, "[IPv6:2001:db8::1]", ""},
		{[]string{"-root-url", "https://news.example.com", "-hostname", "Out1.Example.com."}, nil, "out1.example.com", ""},
		{nil, map[string]string{"HERALD_HOSTNAME": "mta.example.org"}, "mta.example.org", ""},
		{[]string{"-hostname", "192.0.2.1"}, nil, "", "is an address"},
		{[]string{"-hostname", "bad_name.example.com"}, nil, "", "not a host name"},
		{[]string{"-hostname", "-x.example.com"}, nil, "", "not a host name"},
	}
	for _, c := range cases {
		cfg, err := Parse("serve", c.args, env(c.env), io.Discard, nil)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%v, %v) = %v, want an error saying %q", c.args, c.env, err, c.err)
			}
		case err != nil:
			t.Errorf("Parse(%v, %v) = %v", c.args, c.env, err)
		case cfg.Hostname != c.want:
			t.Errorf("Parse(%v, %v).Hostname = %q, want %q", c.args, c.env, cfg.Hostname, c.want)
		}
	}
}

func parse(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	return Parse("serve", args, func(string) string { return "" }, io.Discard, nil)
}

func TestHardeningSettings(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("f", 40)
	file := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte(secret+"\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)

	c, err := parse(t, "-secret-file", file, "-trusted-proxies", "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32", "-import-max-mb", "50")
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret != secret {
		t.Errorf("Secret from file = %q, want %q", c.Secret, secret)
	}
	var got []string
	for _, p := range c.Proxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.0.2.7/32 2001:db8::/32" {
		t.Errorf("Proxies = %v", got)
	}
	if c.ImportMaxBytes != 50<<20 {
		t.Errorf("ImportMaxBytes = %d, want 50 MB", c.ImportMaxBytes)
	}
	if c, _ := parse(t); len(c.Proxies) != 0 || c.ImportMaxBytes != 1024<<20 {
		t.Errorf("defaults: proxies %v, import limit %d; want none and 1 GB", c.Proxies, c.ImportMaxBytes)
	}

	for _, bad := range [][]string{
		{"-secret-file", filepath.Join(dir, "missing")},
		{"-secret-file", empty},
		{"-secret-file", file, "-secret", secret},
		{"-trusted-proxies", "10.0.0.0/33"},
		{"-trusted-proxies", "proxy.example.com"},
		{"-import-max-mb", "0"},
		{"-import-max-mb", "lots"},
	} {
		if _, err := parse(t, bad...); err == nil {
			t.Errorf("Parse(%q) = nil error, want a refusal", bad)
		}
	}

	prod, _ := parse(t, "-root-url", "https://mail.example.com")
	if err := prod.RequireSecret(); err == nil || !strings.Contains(err.Error(), "HERALD_SECRET") {
		t.Errorf("RequireSecret() under https without a secret = %v, want a refusal naming HERALD_SECRET", err)
	}
	dev, _ := parse(t, "-root-url", "http://localhost:8080")
	if err := dev.RequireSecret(); err != nil {
		t.Errorf("RequireSecret() under http = %v, want nil", err)
	}
}

// The lease and its heartbeat: defaults, settings, and a heartbeat that
// leaves a renewal no second chance is refused with what to change.
func TestLeaseSettings(t *testing.T) {
	c, err := parse(t)
	if err != nil || c.Lease != 10*time.Second || c.LeaseHeartbeat != 2*time.Second {
		t.Fatalf("defaults: lease %v, heartbeat %v, %v; want 10s, 2s", c.Lease, c.LeaseHeartbeat, err)
	}
	env := map[string]string{"HERALD_LEASE": "30s", "HERALD_LEASE_HEARTBEAT": "5s"}
	c, err = Parse("serve", nil, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil || c.Lease != 30*time.Second || c.LeaseHeartbeat != 5*time.Second {
		t.Fatalf("environment: lease %v, heartbeat %v, %v; want 30s, 5s", c.Lease, c.LeaseHeartbeat, err)
	}
	for _, bad := range [][]string{{"-lease", "5s", "-lease-heartbeat", "3s"}, {"-lease", "4s", "-lease-heartbeat", "2s"},
		{"-lease", "soon"}, {"-lease-heartbeat", "0s"}} {
		if _, err := parse(t, bad...); err == nil || !strings.Contains(err.Error(), "lease") {
			t.Errorf("Parse(%v) = %v; want an error about the lease", bad, err)
		}
	}
	if _, err := parse(t, "-lease", "5s", "-lease-heartbeat", "3s"); err == nil || !strings.Contains(err.Error(), "under half the lease") {
		t.Errorf("heartbeat over half the lease: %v", err)
	}
}

// The lifetimes of account links: defaults, the environment, and a value
// that is no duration refused with an example.
func TestLinkTTLs(t *testing.T) {
	c, err := parse(t)
	if err != nil || c.ResetLinkTTL != time.Hour || c.InviteLinkTTL != 168*time.Hour {
		t.Fatalf("defaults: reset %v, invite %v, %v; want 1h, 168h", c.ResetLinkTTL, c.InviteLinkTTL, err)
	}
	env := map[string]string{"HERALD_RESET_LINK_TTL": "15m", "HERALD_INVITE_LINK_TTL": "48h"}
	c, err = Parse("serve", nil, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil || c.ResetLinkTTL != 15*time.Minute || c.InviteLinkTTL != 48*time.Hour {
		t.Fatalf("environment: reset %v, invite %v, %v; want 15m, 48h", c.ResetLinkTTL, c.InviteLinkTTL, err)
	}
	for _, bad := range [][]string{{"-reset-link-ttl", "soon"}, {"-invite-link-ttl", "0s"}} {
		if _, err := parse(t, bad...); err == nil || !strings.Contains(err.Error(), "link TTL") {
			t.Errorf("Parse(%v) = %v; want an error about the link TTL", bad, err)
		}
	}
}

// TestSetBy: Source names the environment variable or the flag that set
// a setting, and nothing for one left at its default.
func TestSetBy(t *testing.T) {
	env := map[string]string{"HERALD_RELAY": "smtp://r.test:587", "HERALD_TRANSPORT": "relay"}
	c, err := Parse("serve", []string{"-transport", "direct", "-bounce-imap-move", "Done"}, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{
		"relay":                "HERALD_RELAY in the environment",
		"transport":            "the -transport flag",
		"bounce-imap-move":     "the -bounce-imap-move flag",
		"bounce-imap":          "",
		"bounce-imap-interval": "",
	} {
		if got := c.Source(flag); got != want {
			t.Errorf("Source(%s) = %q, want %q", flag, got, want)
		}
	}
	if c.Transport != "direct" {
		t.Errorf("transport %q: the flag wins over the environment", c.Transport)
	}
}

// TestSpamd: HERALD_SPAMD is read as host:port, and anything else is
// refused with a message naming the setting.
func TestSpamd(t *testing.T) {
	for _, tc := range []struct{ v, err string }{
		{"", ""}, {"127.0.0.1:783", ""}, {"spamd.internal:783", ""},
		{"127.0.0.1", "spamd address"}, {":783", "spamd address"},
	} {
		env := map[string]string{"HERALD_SPAMD": tc.v}
		c, err := Parse("serve", nil, func(k string) string { return env[k] }, io.Discard, nil)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("HERALD_SPAMD=%q: %v", tc.v, err)
		case tc.err == "" && c.Spamd != tc.v:
			t.Errorf("HERALD_SPAMD=%q: Spamd = %q", tc.v, c.Spamd)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("HERALD_SPAMD=%q: err = %v, want %q", tc.v, err, tc.err)
		}
	}
}
