package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/jobs"
	"github.com/herald-mail/herald/internal/outhook"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/web"
)

func printHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	config.Help(w)
}

// open parses flags, connects to the database and migrates it.
func open(ctx context.Context, name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*config.Config, *models.Store, error) {
	cfg, err := config.Parse(name, args, os.Getenv, stderr, extra)
	if err != nil {
		return nil, nil, err
	}
	store, err := models.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, nil, err
	}
	if cfg.Secret == "" {
		if name == "serve" {
			if err := cfg.RequireSecret(); err != nil {
				store.Close()
				return nil, nil, err
			}
		}
		if cfg.Secret, err = store.EnsureSecret(ctx); err != nil {
			store.Close()
			return nil, nil, err
		}
	} else if err := adoptSecret(ctx, cfg, store, stderr); err != nil {
		store.Close()
		return nil, nil, err
	}
	return cfg, store, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, store, err := open(ctx, "serve", args, stderr, nil)
	if err != nil {
		return err
	}
	defer store.Close()

	// The one wiring of the engine (transport, staging wrapper, options),
	// the one the mailer's tests and the end-to-end tests run too.
	eng, err := mailer.FromConfig(cfg, store, log)
	if err != nil {
		return err
	}
	engDone := make(chan error, 1)
	engCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	go func() { engDone <- eng.Run(engCtx) }()

	srv := web.New(cfg, store, eng, log)
	// Background work any node may do: imports other nodes left behind,
	// and the periodic jobs, each run taken by one node.
	go srv.Imports().Run(engCtx, 5*time.Second)
	owner := models.NewLeaseOwner(cfg.NodeID)
	sched := &jobs.Scheduler{Store: store, Log: log, Owner: owner,
		Jobs: append(jobs.Default(store, log), jobs.NewBlocklists(cfg, store, eng, log).Job(cfg.BlocklistInterval))}
	go sched.Run(engCtx)
	// Outgoing webhooks look for work far more often than the daily and
	// hourly jobs: a scheduler of their own.
	hooks := &outhook.Dispatcher{Store: store, Log: log, Owner: owner, Backoff: cfg.WebhookBackoff}
	hookSched := &jobs.Scheduler{Store: store, Log: log, Owner: owner, Look: cfg.WebhookPoll, Jobs: []jobs.Job{jobs.Webhooks(hooks, cfg.WebhookPoll)}}
	go hookSched.Run(engCtx)
	// Placement tests search their seed mailboxes every few seconds while
	// one runs: a scheduler of their own too.
	seeds := &jobs.PlacementPoller{Store: store, Secrets: cfg.Secrets(), Log: log}
	seedSched := &jobs.Scheduler{Store: store, Log: log, Owner: owner, Look: cfg.PlacementPoll, Jobs: []jobs.Job{jobs.Placement(seeds, cfg.PlacementPoll)}}
	go seedSched.Run(engCtx)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another Herald running? set HERALD_LISTEN to another port)", cfg.Listen, err)
	}
	httpSrv := web.HTTPServer(srv)
	errc := make(chan error, 3)
	go func() { errc <- httpSrv.Serve(ln) }()

	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", eng.MetricsHandler())
		ms := &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- ms.ListenAndServe() }()
		defer ms.Close()
	}
	if cfg.InboundListen != "" {
		in, err := mailer.NewInboundServer(store, mailer.InboundOptions{
			Addr: cfg.InboundListen, Keys: token.NewKeyring(cfg.Secrets()...),
			FeedbackAddress: cfg.FeedbackAddress, Resolver: mailer.NewResolver(cfg.DNSServer), Logger: log,
		})
		if err != nil {
			return err
		}
		go func() { errc <- in.ListenAndServe(ctx) }()
		log.Info("inbound SMTP listening", "addr", cfg.InboundListen)
	}
	if err := startPoller(ctx, cfg, store, log); err != nil {
		return err
	}

	n, _ := store.UserCount(ctx)
	where := cfg.RootURL + "/login"
	if n == 0 {
		fmt.Fprintf(stdout, "Herald is running. Open %s to create the first admin account.\n", where)
	} else {
		fmt.Fprintf(stdout, "Herald is running. Sign in at %s\n", where)
	}
	log.Info("listening", "addr", ln.Addr().String(), "root_url", cfg.RootURL, "database", store.Dialect(), "transport", eng.Delivery().Transport)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shut, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = httpSrv.Shutdown(shut)
	srv.Shutdown(shut) // flushes buffered tracking events
	stopEngine()
	select {
	case <-engDone:
	case <-shut.Done():
		log.Error("mailer did not stop in time")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse("migrate", args, os.Getenv, stderr, nil)
	if err != nil {
		return err
	}
	store, err := models.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "The database is up to date.")
	} else {
		fmt.Fprintf(stdout, "Applied migrations %v.\n", applied)
	}
	return nil
}

func userCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var email, role, password, name string
	_, store, err := open(ctx, "user create", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email (required)")
		fs.StringVar(&role, "role", models.RoleAdmin, "admin, marketer or viewer")
		fs.StringVar(&password, "password", "", "initial password (default: generated and printed)")
		fs.StringVar(&name, "name", "", "display name")
	})
	if err != nil {
		return err
	}
	defer store.Close()
	generated := password == ""
	if generated {
		b := make([]byte, 12)
		rand.Read(b)
		password = base64.RawURLEncoding.EncodeToString(b)
	}
	if errs := models.ValidateNewUser(email, password, role); len(errs) > 0 {
		for f, m := range errs {
			fmt.Fprintf(stderr, "%s: %s\n", f, m)
		}
		return errors.New("user not created")
	}
	u, err := store.CreateUser(ctx, email, name, password, role)
	if errors.Is(err, models.ErrConflict) {
		return fmt.Errorf("a user with email %s already exists", email)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created %s %s.\n", u.Role, u.Email)
	if generated {
		fmt.Fprintf(stdout, "Password: %s\n", password)
	}
	return nil
}

// userReset2FA turns a user's two-factor sign-in off from the shell: the
// way back in for the last admin who lost both their authenticator and
// their recovery codes.
func userReset2FA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var email string
	_, store, err := open(ctx, "user reset-2fa", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email (required)")
	})
	if err != nil {
		return err
	}
	defer store.Close()
	if strings.TrimSpace(email) == "" {
		return errors.New("user reset-2fa needs the user's email: herald user reset-2fa --email you@example.com")
	}
	u, err := store.UserByEmail(ctx, email)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no user has the email %s", email)
	} else if err != nil {
		return err
	}
	t, err := store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	if err := store.DisableTOTP(t.Ctx(), u.ID); err != nil {
		return err
	}
	err = t.Commit(models.AuditEntry{Action: "2fa.reset", ObjectType: "user", ObjectID: strconv.FormatInt(u.ID, 10),
		Summary: "two-factor sign-in of " + u.Email + " reset from the shell", Actor: "herald user reset-2fa"})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Two-factor sign-in of %s is off; they sign in with their password and can set it up again.\n", u.Email)
	return nil
}

// tokenCreate prints a new API token for an existing user, for scripts and
// deployments that drive Herald without the dashboard.
func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var email, name string
	_, store, err := open(ctx, "token create", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the email of the user the token acts as (required)")
		fs.StringVar(&name, "name", "", "what the token is for, shown on the API tokens page (default: created by herald token create)")
	})
	if err != nil {
		return err
	}
	defer store.Close()
	if strings.TrimSpace(email) == "" {
		return errors.New("token create needs the user's email: herald token create --email you@example.com [--name deploy]")
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "created by herald token create"
	}
	if len(name) > 100 {
		return errors.New("the token's name is longer than 100 characters; give a shorter --name")
	}
	u, err := store.UserByEmail(ctx, email)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no user has the email %s; create one first with herald user create --email %s", strings.TrimSpace(email), strings.TrimSpace(email))
	}
	if err != nil {
		return err
	}
	plain, t, err := store.CreateAPIToken(ctx, u.ID, name)
	if err != nil {
		return err
	}
	if err := store.Audit(ctx, models.AuditEntry{UserID: &u.ID, Actor: "herald token create", Action: "token.create",
		ObjectType: "api_token", ObjectID: strconv.FormatInt(t.ID, 10), Summary: name}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, plain)
	return nil
}

func consentVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, store, err := open(ctx, "consent verify", args, stderr, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	brk, n, err := store.VerifyConsents(ctx)
	if err != nil {
		return err
	}
	if brk != nil {
		fmt.Fprintf(stdout, "BROKEN at consent row %d: %s (%d rows checked)\n", brk.ID, brk.Reason, n)
		return errors.New("the consent ledger does not verify")
	}
	fmt.Fprintf(stdout, "OK: all %d consent rows verify.\n", n)
	return nil
}

// startPoller polls the bounce mailbox of the settings in effect
// (HERALD_BOUNCE_IMAP, else Settings → Delivery) until ctx ends, following
// changes saved in the dashboard.
func startPoller(ctx context.Context, cfg *config.Config, store *models.Store, log *slog.Logger) error {
	rec, err := mailer.NewRecorder(store, mailer.InboundOptions{Keys: token.NewKeyring(cfg.Secrets()...),
		FeedbackAddress: cfg.FeedbackAddress, Resolver: mailer.NewResolver(cfg.DNSServer), Logger: log})
	if err != nil {
		return err
	}
	if cfg.BounceIMAP != "" { // a mistake in the environment stops the start, as before
		if _, err := mailer.NewPoller(rec, mailer.PollOptions{URL: cfg.BounceIMAP}); err != nil {
			return err
		}
	}
	go mailer.RunBounceMailbox(ctx, cfg, store, rec, log, 5*time.Second)
	return nil
}
