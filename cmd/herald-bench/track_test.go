package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The tracking benchmark drives the endpoints over its raw keep-alive
// client, answers every request, and checks that every answered request
// was recorded; it prints the figures the issue asks for.
func TestBenchTrack(t *testing.T) {
	var out bytes.Buffer
	if err := runBenchTrack([]string{"-n", "2000", "-links", "3", "-c", "4", "-d", "700ms"}, &out); err != nil {
		t.Fatalf("runBenchTrack() = %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"throughput:", "cpu:", "latency: p50", "every answered request was recorded"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	m := regexp.MustCompile(`requests: (\d+) answered \((\d+) opens, (\d+) clicks\), (\d+) failed`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no request count in:\n%s", s)
	}
	answered, _ := strconv.Atoi(m[1])
	opens, _ := strconv.Atoi(m[2])
	clicks, _ := strconv.Atoi(m[3])
	if answered < 100 || opens == 0 || clicks == 0 || m[4] != "0" {
		t.Errorf("answered %d (%d opens, %d clicks), %s failed; want both kinds and no failure:\n%s", answered, opens, clicks, m[4], s)
	}
	t.Log(s)
}
