package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/herald-mail/herald/mailer/bounce"
)

// runBounceParse implements "herald bounce parse FILE...": one JSON object
// per recipient found, one per line. A file that cannot be read is reported
// on stderr and skipped; the error returned at the end says how many failed.
func runBounceParse(args []string, stdout io.Writer) error {
	return bounceParse(args, stdout, os.Stderr)
}

// bounceLine is one output line of "herald bounce parse".
type bounceLine struct {
	File       string `json:"file"`
	Recipient  string `json:"recipient"`
	Status     string `json:"status"`
	Kind       string `json:"kind"`
	Category   string `json:"category"`
	Diagnostic string `json:"diagnostic"`
}

func bounceParse(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: herald bounce parse FILE...")
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	failed := 0
	for _, name := range args {
		rep, err := parseBounceFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "herald: bounce parse: %v\n", err)
			failed++
			continue
		}
		for _, v := range rep.Recipients {
			line := bounceLine{name, v.Recipient, v.Status, string(v.Kind), string(v.Category), v.Diagnostic}
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("bounce parse: write: %w", err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("bounce parse: %d of %d files could not be read", failed, len(args))
	}
	return nil
}

func parseBounceFile(name string) (*bounce.Report, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return bounce.Parse(f)
}
