package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestBounceParse(t *testing.T) {
	dsn := filepath.Join("..", "..", "mailer", "bounce", "testdata", "dsn-multi.eml")
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
	want := map[string]string{"file": dsn, "recipient": "gone@example.com", "status": "5.1.1", "kind": "hard", "category": "user_unknown"}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %q, want %q", k, first[k], v)
		}
	}
	if _, ok := first["diagnostic"]; !ok {
		t.Error("diagnostic field missing")
	}
}
