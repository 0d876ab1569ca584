package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Postgres is a PostgreSQL server of the test's own, in a temporary
// folder, that the test may stop and start again (a database outage) while
// Herald runs on it. Trust authentication on 127.0.0.1, no fsync: a test
// server, quick to create and to restart.
type Postgres struct {
	t    testing.TB
	bin  string // the folder of initdb and pg_ctl
	dir  string // the server's folder: data/, the log and the socket
	port int
	asPG bool // run the server as the postgres OS user (we are root)

	mu      sync.Mutex
	running bool
}

// StartPostgres creates and starts a private PostgreSQL server, stopped and
// removed when the test ends. It skips the test when no PostgreSQL server
// binaries are installed (under /usr/lib/postgresql/*/bin, or
// HERALD_PG_BIN), unless HERALD_REQUIRE_POSTGRES says they must be.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := postgresBin()
	if bin == "" {
		if os.Getenv("HERALD_REQUIRE_POSTGRES") != "" {
			t.Fatal("e2e: HERALD_REQUIRE_POSTGRES is set but no PostgreSQL server binaries were found (set HERALD_PG_BIN)")
		}
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin")
	}
	dir, err := os.MkdirTemp("", "herald-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{t: t, bin: bin, dir: dir, port: FreePort(t), asPG: os.Geteuid() == 0}
	t.Cleanup(func() {
		p.stop("immediate")
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "server.log")); err == nil {
				t.Logf("postgres log (tail):\n%s", tail(string(b), 30))
			}
		}
		os.RemoveAll(dir)
	})
	if p.asPG {
		// PostgreSQL refuses to run as root: the folder goes to its user.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("e2e: running as root, PostgreSQL needs the postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	p.Start()
	return p
}

// postgresBin is the newest /usr/lib/postgresql/N/bin holding initdb, or
// HERALD_PG_BIN.
func postgresBin() string {
	if b := os.Getenv("HERALD_PG_BIN"); b != "" {
		return b
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func pgVersion(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

// URL is the server's database URL, for Options.DatabaseURL.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Start starts the server (again) and waits until it takes connections.
func (p *Postgres) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
		p.port, p.dir)
	p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
	p.running = true
}

// Stop stops the server as an administrator would (pg_ctl stop -m fast):
// open sessions are ended, new connections refused until Start.
func (p *Postgres) Stop() {
	p.t.Helper()
	p.stop("fast")
}

func (p *Postgres) stop(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return
	}
	p.run("pg_ctl", "-D", p.data(), "-m", mode, "-w", "-t", "60", "stop")
	p.running = false
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

// run runs one of the server's programs, as the postgres user when we are
// root, failing the test when it fails.
func (p *Postgres) run(prog string, args ...string) {
	p.t.Helper()
	name, argv := filepath.Join(p.bin, prog), args
	if p.asPG {
		name, argv = "runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, prog)}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("e2e: %s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}
