// Package testdb gives tests a real, migrated database of their own: a SQLite
// file in the test's temporary folder, and a fresh PostgreSQL schema when
// HERALD_TEST_POSTGRES holds a DSN. Everything is removed when the test ends.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/herald-mail/herald/models"
)

// SQLite returns a migrated store on a new SQLite file.
func SQLite(t testing.TB) *models.Store {
	t.Helper()
	return open(t, filepath.Join(t.TempDir(), "herald.db"))
}

// PostgresDSN returns the test server's DSN, or "" when none is configured.
func PostgresDSN() string { return os.Getenv("HERALD_TEST_POSTGRES") }

// Postgres returns a migrated store in a new schema of the test PostgreSQL
// server, and skips the test when HERALD_TEST_POSTGRES is not set.
func Postgres(t testing.TB) *models.Store {
	t.Helper()
	dsn := PostgresDSN()
	if dsn == "" {
		if os.Getenv("HERALD_REQUIRE_POSTGRES") != "" {
			t.Fatal("HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_POSTGRES is empty")
		}
		t.Skip("HERALD_TEST_POSTGRES not set")
	}
	return open(t, PostgresSchema(t, dsn))
}

// PostgresSchema creates a schema for one test and returns a DSN whose
// search_path points at it; the schema is dropped when the test ends.
func PostgresSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := models.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	if err := admin.DB().Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.DB().Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB, dsn string) *models.Store {
	t.Helper()
	ctx := context.Background()
	s, err := models.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// Each runs fn once on SQLite and, when configured, once on PostgreSQL, as
// subtests named after the dialect.
func Each(t *testing.T, fn func(t *testing.T, s *models.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}
