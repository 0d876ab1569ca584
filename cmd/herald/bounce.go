package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/herald-mail/herald/mailer/bounce"
)

// bounceLine is one output line of "herald bounce parse".
type bounceLine struct {
	File       string `json:"file"`
	Recipient  string `json:"recipient"`
	Status     string `json:"status"`
	Kind       string `json:"kind"`
	Category   string `json:"category"`
	Diagnostic string `json:"diagnostic"`
	Rule       string `json:"rule,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

const bounceUsage = "usage: herald bounce parse [--explain] FILE..."

// bounceParse prints one JSON object per recipient found, one per line, or
// with --explain, for each recipient the evidence and the row of the
// precedence table that decided. A file that cannot be read or is not a
// readable message gets an error line on stderr naming it and the reason;
// the others are still parsed, and the error returned at the end (a
// non-zero exit status) says how many failed.
func bounceParse(args []string, stdout, stderr io.Writer) error {
	explain := false
	var files []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			files = append(files, args[i+1:]...)
			i = len(args)
		case a == "--explain" || a == "-explain":
			explain = true
		case strings.HasPrefix(a, "-") && a != "-":
			return fmt.Errorf("bounce parse: unknown flag %s; %s", a, bounceUsage)
		default:
			files = append(files, a)
		}
	}
	if len(files) == 0 {
		return errors.New(bounceUsage)
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	failed := 0
	for _, name := range files {
		rep, err := parseBounceFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "herald: bounce parse: %s: %v\n", name, err)
			failed++
			continue
		}
		if explain {
			if err := explainReport(stdout, name, rep); err != nil {
				return fmt.Errorf("bounce parse: write: %w", err)
			}
			continue
		}
		for _, v := range rep.Recipients {
			line := bounceLine{name, v.Recipient, v.Status, string(v.Kind), string(v.Category), v.Diagnostic, v.Rule, v.Reason}
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("bounce parse: write: %w", err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("bounce parse: %d of %d files could not be parsed (see the lines above)", failed, len(files))
	}
	return nil
}

// explainReport writes the human-readable account of one file.
func explainReport(w io.Writer, name string, rep *bounce.Report) error {
	var b strings.Builder
	if len(rep.Recipients) == 0 {
		fmt.Fprintf(&b, "%s: no bounce, complaint or auto-reply found: nothing to record\n", name)
	}
	for _, v := range rep.Recipients {
		fmt.Fprintf(&b, "%s: %s\n", name, v.Recipient)
		fmt.Fprintf(&b, "  verdict:    %s", v.Kind)
		if v.Category != "" {
			fmt.Fprintf(&b, " / %s", v.Category)
		}
		b.WriteString("\n")
		if v.Diagnostic != "" {
			fmt.Fprintf(&b, "  diagnostic: %s\n", v.Diagnostic)
		}
		if v.Evidence.Source != "" {
			fmt.Fprintf(&b, "  evidence:   %s\n", v.Evidence)
		}
		if v.Rule != "" {
			fmt.Fprintf(&b, "  decided by: %s\n", v.Explain())
		} else {
			fmt.Fprintf(&b, "  decided by: %s\n", v.Reason)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func parseBounceFile(name string) (*bounce.Report, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return bounce.ParseStrict(f)
}
