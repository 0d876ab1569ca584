package main

import (
	"strings"
	"testing"
)

func TestRunBenchImportSmall(t *testing.T) {
	var out strings.Builder
	if err := runBenchImport([]string{"-n", "3000", "-runs", "2"}, &out); err != nil {
		t.Fatalf("runBenchImport() = %v\n%s", err, out.String())
	}
	for _, want := range []string{"imported 3000 rows", "failed 0", "peak RSS:", "list + search", "median"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
