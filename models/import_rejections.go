package models

import (
	"context"
	"fmt"
)

// ImportRejection is one row an import refused or skipped, with why.
type ImportRejection struct {
	RowNum int64 // line in the file
	Email  string
	Reason string
}

// ImportRejections returns the first limit rows an import refused or
// skipped, in file order, for its page (WriteImportErrors has them all).
func (s *Store) ImportRejections(ctx context.Context, id int64, limit int) ([]ImportRejection, error) {
	var out []ImportRejection
	err := s.conn(ctx).Raw(`SELECT row_num, email, reason FROM import_errors WHERE import_id = ? ORDER BY row_num LIMIT ?`, id, limit).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: import %d rejections: %w", id, err)
	}
	return out, nil
}
