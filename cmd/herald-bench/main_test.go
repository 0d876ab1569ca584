package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for herald-bench when a benchmark
// under test starts its child process (os.Executable is the test binary):
// with a child's command as its first argument it runs that command
// instead of the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == sinkCommand || os.Args[1] == relaySinkCommand || os.Args[1] == trackClientCommand) {
		if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		args    []string
		want    string // in the output
		wantErr string // in the error; "" for none
	}{
		{nil, "herald-bench send", ""},
		{[]string{"help"}, "herald-bench track", ""},
		{[]string{"nonsense"}, "", `unknown command "nonsense"; run herald-bench help`},
	}
	for _, tt := range tests {
		var out strings.Builder
		err := run(tt.args, strings.NewReader(""), &out)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("run(%q) error = %v, want %q", tt.args, err, tt.wantErr)
		}
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("run(%q) output = %q, want it to contain %q", tt.args, out.String(), tt.want)
		}
	}
}
