// Command herald runs Herald: the dashboard, the public pages, the JSON API
// and the mailer, in one process.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

const usage = `Herald: self-hosted email campaigns.

Usage:
  herald [serve] [flags]           start the web server and the mailer (the default)
  herald migrate [flags]           apply database migrations and exit
  herald user create --email E --role admin|marketer|viewer [--password P] [flags]
                                   create a user (a password is generated when omitted)
  herald user reset-2fa --email E [flags]
                                   turn off a user's two-factor sign-in (lost authenticator and codes)
  herald token create --email E [--name N] [flags]
                                   print a new API token for that user (for scripts)
  herald consent verify [flags]    check the consent ledger's hash chain
  herald bounce parse [--explain] FILE...
                                   classify bounce/complaint messages, one JSON line per recipient
                                   (--explain: the evidence and the rule that decided)
  herald help                      show this help

Flags (each can also be set by its environment variable):
`

// run dispatches a command line; it is main without the process exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	sub := func() (string, []string) {
		if len(args) == 0 {
			return "", nil
		}
		return args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, stdout, stderr)
	case "user":
		switch s, rest := sub(); s {
		case "create":
			return userCreate(ctx, rest, stdout, stderr)
		case "reset-2fa":
			return userReset2FA(ctx, rest, stdout, stderr)
		}
		return fmt.Errorf("unknown user command; try: herald user create --email you@example.com --role admin, or herald user reset-2fa --email you@example.com")
	case "token":
		if s, rest := sub(); s == "create" {
			return tokenCreate(ctx, rest, stdout, stderr)
		}
		return fmt.Errorf("unknown token command; try: herald token create --email you@example.com")
	case "consent":
		if s, rest := sub(); s == "verify" {
			return consentVerify(ctx, rest, stdout, stderr)
		}
		return fmt.Errorf("unknown consent command; try: herald consent verify")
	case "bounce":
		if s, rest := sub(); s == "parse" {
			return bounceParse(rest, stdout, stderr)
		}
		return fmt.Errorf("unknown bounce command; try: herald bounce parse [--explain] FILE...")
	case "bench":
		return fmt.Errorf("the benchmarks are their own command now: go run ./cmd/herald-bench help")
	case "help", "-h", "--help":
		printHelp(stdout)
		return nil
	}
	return fmt.Errorf("unknown command %q; run herald help", cmd)
}
