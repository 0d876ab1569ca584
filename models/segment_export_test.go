package models

import "context"

// CountSegmentPerRow counts with the per-subscriber form of the conditions
// materialisation uses, so tests can hold both forms to the same people.
func (s *Store) CountSegmentPerRow(ctx context.Context, c Conditions) (int64, error) {
	where, args, err := s.compile(ctx, c, now(), true)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.conn(ctx).Raw("SELECT COUNT(*) FROM subscribers s WHERE s.status = 'active' AND "+where, args...).Scan(&n).Error
	return n, err
}
