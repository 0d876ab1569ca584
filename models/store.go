// Package models holds Herald's data: GORM models and the Store, whose
// methods are the only place SQL is written.
package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/herald-mail/herald/migrations"
)

// Dialect names the database engine behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sentinel errors that callers branch on. The web layer maps them to status
// codes; their text is safe to show.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Store is Herald's data layer. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	sql     *sql.DB
	dialect Dialect
	// queue is where the mailer's hot path (materialise, claim, record
	// outcomes, leases) runs: on SQLite a pool of its own with a single
	// connection, so that connection is the only one writing deliveries
	// and its page cache stays valid between transactions (SQLite drops a
	// connection's whole cache whenever another connection has written),
	// and its writers queue in Go rather than in SQLite's sleeping busy
	// handler. On PostgreSQL it is a second pool whose commits do not wait
	// for the WAL flush (see Open).
	//
	// On SQLite the two pools differ in durability (SQLiteDSN): every
	// commit of the main pool is synced before it returns, because it
	// acknowledges what a person did (an unsubscribe, a suppression, a
	// cancel, a consent); the queue's commits are synced only at
	// checkpoints or with the next synced commit, since after a power loss
	// what they recorded is repeated, never lost: a claim or an outcome
	// rolled back is sent again.
	queue *Store
}

// hot returns the store the mailer's hot path runs on (see queue).
func (s *Store) hot() *Store {
	if s.queue == nil {
		return s
	}
	return s.queue
}

// Open connects to the database named by dsn: a postgres:// or postgresql://
// URL selects PostgreSQL, anything else is a SQLite file path (an optional
// "sqlite:" prefix is stripped). It does not migrate; call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg := &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true, PrepareStmt: false}
	var (
		db      *gorm.DB
		err     error
		dialect Dialect
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		dialect = Postgres
		db, err = gorm.Open(postgres.Open(dsn), cfg)
	default:
		dialect = SQLite
		dsn = SQLiteDSN(strings.TrimPrefix(dsn, "sqlite:"))
		db, err = gorm.Open(sqlite.Open(dsn), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("models: open %s: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("models: open %s: %w", dialect, err)
	}
	if dialect == SQLite {
		// WAL allows any number of readers beside the one writer; writers
		// queue on busy_timeout instead of failing.
		sqlDB.SetMaxOpenConns(8)
	} else {
		// Idle connections are kept up to the limit: with Go's default of
		// two, every burst of the engine's concurrent claims, writes and
		// renewals opened (and closed) new server sessions.
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(20)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("models: connect %s: %w", dialect, err)
	}
	s := &Store{db: db, sql: sqlDB, dialect: dialect}
	if dialect == SQLite {
		// The queue's statements touch a batch of rows at a time. Some
		// keep a statement journal (the pages they changed, to undo the
		// statement alone): recording outcomes is an UPDATE with FROM,
		// which does even under OR FAIL. Past 64 KiB SQLite spills the
		// journal to a temporary file, a write system call per page for
		// every batch of outcomes; in memory it is a copy.
		if s.queue, err = openQueue(sqlite.Open(dsn+"&_pragma=temp_store(MEMORY)&_pragma=synchronous(NORMAL)"), cfg, dialect, 1); err != nil {
			sqlDB.Close()
			return nil, err
		}
	} else {
		// The same durability split as SQLite's: the queue's commits
		// return before their WAL record is flushed (synchronous_commit
		// off: a server crash may lose the last fraction of a second of
		// claims and outcomes, whose messages are then sent again, never
		// lost; visibility to other sessions is unchanged, so leases and
		// their generations hold). Waiting for a flush per batch of
		// outcomes held the mailer to the disk's flush rate.
		q, err := queueDSN(dsn)
		if err != nil {
			sqlDB.Close()
			return nil, err
		}
		if s.queue, err = openQueue(postgres.Open(q), cfg, dialect, 10); err != nil {
			sqlDB.Close()
			return nil, err
		}
	}
	return s, nil
}

// openQueue opens the queue's pool (see Store.queue) with conns
// connections, all kept open between bursts.
func openQueue(d gorm.Dialector, cfg *gorm.Config, dialect Dialect, conns int) (*Store, error) {
	qdb, err := gorm.Open(d, cfg)
	if err != nil {
		return nil, fmt.Errorf("models: open %s: %w", dialect, err)
	}
	qsql, err := qdb.DB()
	if err != nil {
		return nil, fmt.Errorf("models: open %s: %w", dialect, err)
	}
	qsql.SetMaxOpenConns(conns)
	qsql.SetMaxIdleConns(conns)
	return &Store{db: qdb, sql: qsql, dialect: dialect}, nil
}

// queueDSN is a PostgreSQL URL for the queue's pool: the same server and
// settings, commits not waiting for the WAL flush.
func queueDSN(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("models: database URL: %w", err)
	}
	q := u.Query()
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SQLiteDSN adds the pragmas Herald relies on to a SQLite file path: WAL,
// a busy timeout, foreign keys and BEGIN IMMEDIATE, so concurrent writers
// wait for each other instead of failing with "database is locked", and
// synchronous=FULL, so a commit survives a power loss once it returned (in
// WAL mode NORMAL may roll back the last commits; Open relaxes it for the
// mailer's own pool only).
func SQLiteDSN(path string) string {
	if strings.Contains(path, "?") {
		return path
	}
	q := url.Values{}
	// 8 KiB pages (set before the first table exists): twice SQLite's
	// default halves the page writes of bulk imports, while the mailer's
	// small scattered updates (a status, an index entry) rewrite half as
	// much as with 16 KiB pages. BenchmarkDeliveryLifecycle: 70 → 65 µs a
	// delivery; BenchmarkImport and BenchmarkCampaignReport unchanged.
	q.Add("_pragma", "page_size(8192)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// Ping checks that the database answers, on every pool the store uses.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("models: ping %s: %w", s.dialect, err)
	}
	if s.queue != nil {
		if err := s.queue.sql.PingContext(ctx); err != nil {
			return fmt.Errorf("models: ping %s: %w", s.dialect, err)
		}
	}
	return nil
}

// Dialect reports which database engine the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the GORM handle to packages that own their own tables (tests,
// the mailer's store adapter). Prefer a named Store method.
func (s *Store) DB() *gorm.DB { return s.db }

// Close releases the connection pool.
func (s *Store) Close() error {
	if s.queue != nil {
		s.queue.sql.Close()
	}
	return s.sql.Close()
}

// Migrate applies every embedded migration not yet applied and returns the
// versions it applied.
func (s *Store) Migrate(ctx context.Context) ([]int64, error) {
	sub, err := fs.Sub(migrations.FS, string(s.dialect))
	if err != nil {
		return nil, fmt.Errorf("models: migrations: %w", err)
	}
	gd := goose.DialectSQLite3
	if s.dialect == Postgres {
		gd = goose.DialectPostgres
	}
	p, err := goose.NewProvider(gd, s.sql, sub)
	if err != nil {
		return nil, fmt.Errorf("models: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("models: migrate: %w", err)
	}
	var applied []int64
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	if len(applied) > 0 {
		slog.Info("migrated", "dialect", s.dialect, "versions", applied)
	}
	return applied, nil
}

// tx runs fn in a transaction. On SQLite the transaction begins IMMEDIATE,
// so it holds the write lock from the start.
// When ctx carries an audit entry (WithAudit), it is written in the same
// transaction, after fn's change (audit_tx.go).
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var pending *pendingAudit
	err := s.conn(ctx).Transaction(func(tx *gorm.DB) error {
		if err := fn(tx); err != nil {
			return err
		}
		var err error
		pending, err = writePendingAudit(ctx, tx)
		return err
	})
	if err == nil && pending != nil {
		pending.written = true
	}
	return err
}

// conn is the handle for a store call made with ctx: the transaction ctx
// carries (Begin), so the call joins it, or else the pool.
func (s *Store) conn(ctx context.Context) *gorm.DB {
	if t, ok := ctx.Value(txCtxKey{}).(*Tx); ok && !t.done {
		return t.db.WithContext(ctx)
	}
	return s.db.WithContext(ctx)
}

// notFound turns gorm's record-not-found into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
