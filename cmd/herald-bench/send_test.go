package main

import (
	"bytes"
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
