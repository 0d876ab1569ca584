package models

import "testing"

// TestNextSpan: a batch's range of ids grows at most fourfold while
// batches come back with few people, never past maxSpan batches, and
// shrinks at once to the batch size's share when one comes back full.
func TestNextSpan(t *testing.T) {
	const batch = 100
	for _, tc := range []struct {
		span, n, want int64
	}{
		{100, 100, 100},           // full: unchanged
		{100, 50, 200},            // half full: twice as wide
		{100, 10, 400},            // a tenth: at most fourfold
		{100, 0, 400},             // empty: fourfold
		{400, 0, maxSpan * batch}, // never past maxSpan batches
		{800, 800, 100},           // full again: back to the batch
		{800, 200, 400},           // a quarter of the batch size per 100 ids
		{100, 400, 100},           // never below the batch
	} {
		if got := nextSpan(tc.span, tc.n, batch); got != tc.want {
			t.Errorf("nextSpan(%d, %d, %d) = %d, want %d", tc.span, tc.n, batch, got, tc.want)
		}
	}
}
