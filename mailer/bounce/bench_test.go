package bounce

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"
)

// minParseRate is the parse speed issue 17 asks to keep: messages per
// second of CPU time (user and system), which other work on the machine
// does not change the way it changes wall time.
const minParseRate = 2000

// loadMessages reads every fixture and corpus message into memory.
func loadMessages(tb testing.TB) [][]byte {
	tb.Helper()
	var msgs [][]byte
	for _, f := range messageFiles(tb) {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	if len(msgs) == 0 {
		tb.Fatal("no messages")
	}
	return msgs
}

// cpuTime is the process's user plus system time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParse parses every fixture and corpus message (the corpus when
// ../shared/bounce-corpus is present) and reports messages per CPU-second.
func BenchmarkParse(b *testing.B) {
	msgs := loadMessages(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	n := 0
	for i := 0; i < b.N; i++ {
		for _, m := range msgs {
			if _, err := ParseStrict(bytes.NewReader(m)); err != nil && !bytes.Contains(m, []byte("broken@example.org")) {
				b.Fatal(err)
			}
			n++
		}
	}
	cpu := cpuTime(b) - start
	b.ReportMetric(float64(n)/cpu.Seconds(), "msgs/cpu-s")
	b.ReportMetric(0, "ns/op") // per-iteration time depends on the corpus size; msgs/cpu-s is the figure
}

// TestParseSpeed keeps parsing at minParseRate messages per CPU-second or
// more over all the messages we have, so that a slow rule cannot slip in.
func TestParseSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	msgs := loadMessages(t)
	// Warm up (regexps, charset tables), then take the best of three
	// rounds of at least half a CPU-second each: other processes on the
	// machine cost this one CPU time too (caches, context switches), and
	// the best round is the closest to the parser's own cost.
	for _, m := range msgs {
		Parse(bytes.NewReader(m))
	}
	rate := 0.0
	for round := 0; round < 3; round++ {
		start := cpuTime(t)
		n := 0
		for cpuTime(t)-start < time.Second/2 {
			for _, m := range msgs {
				ParseStrict(bytes.NewReader(m))
				n++
			}
		}
		r := float64(n) / (cpuTime(t) - start).Seconds()
		t.Logf("round %d: %d messages at %.0f messages per CPU-second", round+1, n, r)
		rate = max(rate, r)
	}
	if rate < minParseRate {
		t.Errorf("parse speed %.0f messages per CPU-second, want at least %d", rate, minParseRate)
	}
}
