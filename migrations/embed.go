// Package migrations holds Herald's versioned SQL schema, one folder per
// database dialect, embedded so the binary carries its own schema.
package migrations

import "embed"

// FS holds sqlite/*.sql and postgres/*.sql, applied in version order by goose.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
