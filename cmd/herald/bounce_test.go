package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(name string) string {
	return filepath.Join("..", "..", "mailer", "bounce", "testdata", name)
}

func TestBounceParse(t *testing.T) {
	dsn := fixture("dsn-multi.eml")
	missing := filepath.Join(t.TempDir(), "missing.eml")
	var out, errOut bytes.Buffer
	err := bounceParse([]string{missing, dsn}, &out, &errOut)
	if err == nil {
		t.Fatal("bounceParse with an unreadable file returned nil error")
	}
	if !strings.Contains(errOut.String(), "missing.eml") {
		t.Errorf("stderr = %q, want it to name the unreadable file", errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out.String())
	}
	var first map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"file": dsn, "recipient": "gone@example.com", "status": "5.1.1", "kind": "hard",
		"category": "user_unknown", "rule": "R8"}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %q, want %q", k, first[k], v)
		}
	}
	for _, k := range []string{"diagnostic", "reason"} {
		if first[k] == "" {
			t.Errorf("%s field missing or empty in %s", k, lines[0])
		}
	}
}

// --explain prints, for each recipient, the verdict, the evidence and the
// row of the precedence table that decided.
func TestBounceParseExplain(t *testing.T) {
	files := []string{fixture("carrier-user-unknown.eml"), fixture("arf.eml"), fixture("plain.eml")}
	var out, errOut bytes.Buffer
	if err := bounceParse(append([]string{"--explain"}, files...), &out, &errOut); err != nil {
		t.Fatalf("bounceParse --explain: %v (stderr %q)", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"carrier-user-unknown.eml: someone@mobile.example.ne.jp\n  verdict:    soft / user_unknown\n",
		"  evidence:   source=notice stage=unknown code=550 words=user_unknown (\"user unknown\")",
		"  decided by: R11 unknown recipient, no recipient-stage evidence: ",
		"carrier-user-unknown.eml: other@mobile.example.ne.jp\n  verdict:    hard / user_unknown\n",
		"  decided by: R8 unknown recipient, recipient-stage evidence: the recipient is unknown and the reply names the address it refuses",
		"arf.eml: reader@example.net\n  verdict:    complaint\n",
		"  decided by: complaint report (feedback type abuse)",
		"plain.eml: no bounce, complaint or auto-reply found",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("--explain output lacks %q; got:\n%s", want, got)
		}
	}
	// Every recipient block has its evidence (if decided by the table) and
	// its deciding row.
	if n, m := strings.Count(got, "  verdict:"), strings.Count(got, "  decided by:"); n != 3 || m != 3 {
		t.Errorf("%d verdicts and %d decisions, want 3 of each:\n%s", n, m, got)
	}
}

// A truncated or binary file gets an error line naming it and the reason;
// the good files are still reported and the command fails.
func TestBounceParseBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(fixture("dsn-multi.eml"))
	if err != nil {
		t.Fatal(err)
	}
	good = bytes.ReplaceAll(good, []byte("\r\n"), []byte("\n"))
	truncated := filepath.Join(dir, "truncated.eml")
	binary := filepath.Join(dir, "image.eml")
	macCR := filepath.Join(dir, "classic-mac.eml")
	write := func(name string, b []byte) {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(truncated, good[:bytes.Index(good, []byte("\n\n"))-10])
	write(binary, append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 7, 0xfe}, 300)...))
	write(macCR, bytes.ReplaceAll(good, []byte("\n"), []byte("\r")))

	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"bounce", "parse", truncated, binary, macCR}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 files") {
		t.Errorf("run = %v, want an error saying 2 of 3 files failed", err)
	}
	stderr := errOut.String()
	for _, want := range []string{
		truncated + ": bounce: not a readable message: truncated: the header never ends",
		binary + ": bounce: not a readable message: binary data",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
		}
	}
	// The CR-only file is read like any other.
	if n := strings.Count(out.String(), `"file":"`+macCR+`"`); n != 3 {
		t.Errorf("classic Mac file gave %d recipients, want 3:\n%s", n, out.String())
	}
}

// The process exits non-zero when some files failed. The test binary runs
// itself as herald (main) to see the real exit status.
func TestBounceParseExitStatus(t *testing.T) {
	if os.Getenv("HERALD_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"herald"}, strings.Split(os.Getenv("HERALD_TEST_ARGS"), "\n")...)
		main()
		os.Exit(0)
	}
	bad := filepath.Join(t.TempDir(), "empty.eml")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		files []string
		code  int
	}{
		{[]string{fixture("dsn-multi.eml")}, 0},
		{[]string{fixture("dsn-multi.eml"), bad}, 1},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBounceParseExitStatus$")
		cmd.Env = append(os.Environ(), "HERALD_TEST_RUN_MAIN=1",
			"HERALD_TEST_ARGS="+strings.Join(append([]string{"bounce", "parse"}, tt.files...), "\n"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("herald bounce parse %v exited %d, want %d (stderr %q)", tt.files, code, tt.code, stderr.String())
		}
		if tt.code != 0 && !strings.Contains(stderr.String(), bad+": bounce: not a readable message: the file is empty") {
			t.Errorf("stderr = %q, want an error line naming %s and the reason", stderr.String(), bad)
		}
	}
}
