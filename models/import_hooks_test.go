package models

import (
	"context"
	"io"
	"testing"
	"time"
)

// Hooks for the external tests of imports (package models_test), which
// need testdb and so cannot live in this package.

// SetImportBatchRows makes import batches n rows long until the test ends.
func SetImportBatchRows(t testing.TB, n int) {
	old := importBatchRows
	importBatchRows = n
	t.Cleanup(func() { importBatchRows = old })
}

// SetImportLease makes import leases d long until the test ends.
func SetImportLease(t testing.TB, d time.Duration) {
	old := importLease
	importLease = d
	t.Cleanup(func() { importLease = old })
}

// ProcessImportFrom is ProcessImport reading the file from r instead of
// the stored file, so a test can stall the reader where it likes.
func (s *Store) ProcessImportFrom(ctx context.Context, id int64, owner string, r io.Reader) error {
	im, err := s.Import(ctx, id)
	if err != nil {
		return err
	}
	var opts []string
	if err := s.conn(ctx).Raw(`SELECT options FROM imports WHERE id = ?`, id).Scan(&opts).Error; err != nil {
		return err
	}
	o, err := decodeImportOptions(opts[0])
	if err != nil {
		return err
	}
	return s.runClaimed(ctx, im, owner, r, im.TotalBytes, o, true)
}
