// Command herald-bench measures Herald on this machine: CSV import and
// subscriber search, sending a campaign through the whole pipeline, and
// the open and click tracking endpoints. It is a tool beside the server,
// not part of it: the herald binary carries none of this code.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench:", err)
		os.Exit(1)
	}
}

const usage = `herald-bench: load tests of Herald, on a new SQLite database each (import: or a
new PostgreSQL schema).

Usage:
  herald-bench import [-n N] [-database-url postgres://…]
                                      CSV import of N generated rows, then timed subscriber searches
                                      (on PostgreSQL: in a new schema, dropped afterwards)
  herald-bench search [-n N] [-database-url postgres://…]
                                      contains-searches and result counts on N imported subscribers
  herald-bench segment [-n N] [-database-url postgres://…]
                                      a segment's live count (3 conditions, one on engagement) and
                                      materialising a campaign from a segment and from a list
  herald-bench automation [-n N] [-database-url postgres://…]
                                      N people entering a welcome series at once: entry and the
                                      first message queued by one advance of the automations job
  herald-bench send [-n N] [-dkim=false]
                                      send a campaign to N recipients through the whole pipeline
                                      to an SMTP sink in a child process
  herald-bench send -relay [-n N] [-domains 50] [-conns 10] [-dkim=false]
                                      the same through a local STARTTLS relay (go-smtp, throwaway CA
                                      given by SSL_CERT_FILE), over N domains and then over one
  herald-bench track [-d 10s] [-c 64] load the open and click tracking endpoints
  herald-bench help                   show this help

Run "herald-bench COMMAND -h" for a command's flags.
`

// The benchmarks run their load generators in child processes (this
// binary again, with one of these commands), so that their CPU is
// measured apart from Herald's.
const (
	sinkCommand        = "sink"         // send's SMTP sink
	relaySinkCommand   = "relay-sink"   // send -relay's STARTTLS relay
	trackClientCommand = "track-client" // track's HTTP load client
)

// run dispatches a command line; it is main without the process exit.
func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "import":
		return runBenchImport(rest, stdout)
	case "search":
		return runBenchSearch(rest, stdout)
	case "segment":
		return runBenchSegment(rest, stdout)
	case "automation":
		return runBenchAutomation(rest, stdout)
	case "send":
		return runBenchSend(rest, stdout)
	case "track":
		return runBenchTrack(rest, stdout)
	case sinkCommand:
		return runSendBenchSink(stdin, stdout)
	case relaySinkCommand:
		return runRelaySink(rest, stdin, stdout)
	case trackClientCommand:
		return runTrackClientJob(stdin, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q; run herald-bench help", cmd)
}
