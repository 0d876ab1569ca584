package spamc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/spamdtest"
	"github.com/herald-mail/herald/mailer/spamc"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

func message(body string) []byte {
	return []byte(strings.ReplaceAll("From: Ada <ada@example.com>\nTo: bob@example.org\nSubject: Hello\n"+
		"Date: Sun, 06 Dec 2026 02:00:00 +0000\nMessage-ID: <1@example.com>\nMIME-Version: 1.0\n"+
		"Content-Type: text/plain; charset=utf-8\n\n"+body+"\n", "\n", "\r\n"))
}

// TestReport asks a real spamd about GTUBE (the standard test string
// every SpamAssassin scores as spam) and about an ordinary note.
func TestReport(t *testing.T) {
	c := &spamc.Client{Addr: spamdtest.Start(t)}
	ctx := context.Background()

	rep, err := c.Report(ctx, message("This is a test.\n"+gtube))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Spam || rep.Score < 100 || rep.Threshold != 5 {
		t.Errorf("GTUBE: Spam %v, score %.1f / %.1f; want spam over 100 of 5", rep.Spam, rep.Score, rep.Threshold)
	}
	var found *spamc.Rule
	for i := range rep.Rules {
		if rep.Rules[i].Name == "GTUBE" {
			found = &rep.Rules[i]
		}
	}
	if found == nil || found.Score < 100 || !strings.Contains(found.Description, "Generic Test") {
		t.Errorf("GTUBE rule = %+v in %+v, want its score and description", found, rep.Rules)
	}

	rep, err = c.Report(ctx, message("Dear Bob,\n\nthe minutes of Tuesday's meeting are attached to the wiki page.\nSee you next week,\nAda"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Spam || rep.Score >= 5 {
		t.Errorf("an ordinary note scored %.1f (%+v)", rep.Score, rep.Rules)
	}
	t.Logf("ordinary note: %.1f, rules %+v", rep.Score, rep.Rules)
}

// TestTooLarge: a message over MaxSize is refused before it is sent.
func TestTooLarge(t *testing.T) {
	c := &spamc.Client{Addr: "127.0.0.1:1", MaxSize: 10}
	if _, err := c.Report(context.Background(), message("too long for ten bytes")); err != spamc.ErrTooLarge {
		t.Errorf("Report() = %v, want ErrTooLarge", err)
	}
}

// TestUnreachable: no spamd is an error naming the cause, not a hang.
func TestUnreachable(t *testing.T) {
	c := &spamc.Client{Addr: "127.0.0.1:1"}
	if _, err := c.Report(context.Background(), message("x")); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Report() = %v, want connection refused", err)
	}
}
