package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// The send benchmark runs end to end (sink child process included) and
// prints every figure.
func TestBenchSend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sink process")
	}
	for _, dkim := range []string{"-dkim=true", "-dkim=false"} {
		var out bytes.Buffer
		if err := runBenchSend([]string{"-n", "300", dkim}, &out); err != nil {
			t.Fatalf("runBenchSend(%s) = %v\n%s", dkim, err, out.String())
		}
		for _, want := range []string{"throughput:", "herald cpu:", "sink cpu:", "peak rss:", "rsa-2048 signs:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("runBenchSend(%s) output lacks %q:\n%s", dkim, want, out.String())
			}
		}
		t.Log(out.String())
	}
}

// The send benchmark on PostgreSQL runs in a schema of its own and drops
// it: two runs in a row both start empty and send everything.
func TestBenchSendPostgres(t *testing.T) {
	dsn := os.Getenv("HERALD_TEST_POSTGRES")
	if testing.Short() || dsn == "" {
		t.Skip("needs HERALD_TEST_POSTGRES and a sink process")
	}
	for range 2 {
		var out bytes.Buffer
		if err := runBenchSend([]string{"-n", "300", "-dkim=false", "-database-url", dsn}, &out); err != nil {
			t.Fatalf("runBenchSend(postgres) = %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "300 messages (postgres") || !strings.Contains(out.String(), "throughput:") {
			t.Errorf("runBenchSend(postgres) output:\n%s", out.String())
		}
	}
	if err := runBenchSend([]string{"-database-url", "mysql://x"}, io.Discard); err == nil {
		t.Errorf("runBenchSend(-database-url mysql://x) = nil; want an error naming the URL")
	}
}

// The relay benchmark runs end to end (relay child process, STARTTLS
// verified through SSL_CERT_FILE, serve's wiring) over several domains and
// over one, and prints both rates and their ratio.
func TestBenchSendRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relay processes")
	}
	t.Setenv("SSL_CERT_FILE", "") // restored afterwards; the run sets its own
	var out bytes.Buffer
	if err := runBenchSendRelay(300, 5, 1, false, 3, &out); err != nil {
		t.Fatalf("runBenchSendRelay() = %v\n%s", err, out.String())
	}
	for _, want := range []string{"300 messages to 5 domain(s)", "300 messages to 1 domain(s)", "relay conns:", "5 domains vs one:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("runBenchSendRelay() output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
}
