package models

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// An import is cluster-safe: its file is stored in the database (in
// import_chunks) when it is uploaded, the options it runs with are stored
// when it is started, and whichever node claims it holds a lease on its
// row while it runs. A node that stops cleanly hands the lease back at
// once; one that dies lets it run out. Either way another node claims the
// import and resumes after the last batch that was committed.

// importLease is how long a claim on a running import lasts without being
// renewed; the node running it renews it every importLease/3.
var importLease = 15 * time.Second

// importChunkBytes is the size of the stored pieces of an uploaded file:
// one is in memory at a time, while it is written or read.
const importChunkBytes = 1 << 20

// errLeaseLost stops a run whose import another node has taken over.
var errLeaseLost = errors.New("another node took over the import")

// NewLeaseOwner returns a name for this process in import leases: the
// host name and process id, for people reading the table, and random bytes
// so that a restarted process never mistakes its predecessor's claim for
// its own.
func NewLeaseOwner(node string) string {
	if node == "" {
		node, _ = os.Hostname()
	}
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", node, os.Getpid(), hex.EncodeToString(b))
}

// SaveImportFile stores the file read from r as the import's file, a
// chunk at a time, and returns its size. It reads r to its end; the caller
// checks the size against its limit (and deletes the import when it
// refuses it).
func (s *Store) SaveImportFile(ctx context.Context, id int64, r io.Reader) (int64, error) {
	buf := make([]byte, importChunkBytes)
	var total int64
	for seq := 0; ; seq++ {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if xerr := s.conn(ctx).Exec(`INSERT INTO import_chunks (import_id, seq, data) VALUES (?, ?, ?)`, id, seq, buf[:n]).Error; xerr != nil {
				return total, fmt.Errorf("models: store the file of import %d: %w", id, xerr)
			}
			total += int64(n)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if err := s.conn(ctx).Exec(`UPDATE imports SET total_bytes = ? WHERE id = ?`, total, id).Error; err != nil {
				return total, fmt.Errorf("models: store the file of import %d: %w", id, err)
			}
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// ImportFile returns a reader over the import's stored file. It fetches
// one chunk at a time. An import whose file was deleted (it ended) reads
// as an empty file.
func (s *Store) ImportFile(ctx context.Context, id int64) io.Reader {
	return &chunkReader{ctx: ctx, s: s, id: id}
}

type chunkReader struct {
	ctx  context.Context
	s    *Store
	id   int64
	seq  int
	buf  []byte
	done bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.done {
			return 0, io.EOF
		}
		var rows [][]byte
		err := c.s.conn(c.ctx).Raw(`SELECT data FROM import_chunks WHERE import_id = ? AND seq = ?`, c.id, c.seq).Scan(&rows).Error
		if err != nil {
			return 0, fmt.Errorf("models: read the file of import %d: %w", c.id, err)
		}
		if len(rows) == 0 {
			c.done = true
			continue
		}
		c.buf, c.seq = rows[0], c.seq+1
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// DeleteImport removes an import that never ran, with its stored file:
// an upload the caller refused.
func (s *Store) DeleteImport(ctx context.Context, id int64) error {
	err := s.conn(ctx).Exec(`DELETE FROM imports WHERE id = ? AND status = ?`, id, ImportQueued).Error
	if err != nil {
		return fmt.Errorf("models: delete import %d: %w", id, err)
	}
	return nil
}

// QueueImport records the options an uploaded import runs with and makes
// it ready for any node to claim (ClaimImport). It fails with ErrConflict
// when the import was started already.
func (s *Store) QueueImport(ctx context.Context, id int64, opts ImportOptions) error {
	b, err := json.Marshal(opts)
	if err != nil {
		return fmt.Errorf("models: queue import %d: %w", id, err)
	}
	res := s.conn(ctx).Exec(`UPDATE imports SET options = ?, list_id = ?, mode = ?, lawful_basis = ?, source = ?
		WHERE id = ? AND status = ? AND options = ''`, string(b), opts.ListID, opts.Mode, opts.LawfulBasis, opts.Source, id, ImportQueued)
	if res.Error != nil {
		return fmt.Errorf("models: queue import %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: queue import %d: it was started already: %w", id, ErrConflict)
	}
	return nil
}

// claimable is the condition on an imports row that a node may claim it:
// started (it has options) and either waiting for its first node or
// running under a lease that was handed back or ran out.
const claimable = `options <> '' AND (status = 'queued' OR (status = 'running' AND (lease_until IS NULL OR lease_until < ?)))`

// ClaimImport claims a started import for owner until now+importLease and
// returns its id, or 0 when there was none to claim: the import id when id
// is not 0, else the oldest claimable one. Two nodes asking at once never
// both get it: the condition is checked again on the locked row.
func (s *Store) ClaimImport(ctx context.Context, owner string, id int64) (int64, error) {
	now := dbNow()
	pick := `(SELECT id FROM imports WHERE ` + claimable + ` ORDER BY id LIMIT 1)`
	args := []any{ImportRunning, owner, dbTime(now.Add(importLease)), now}
	if id != 0 {
		pick = `?`
		args = []any{ImportRunning, owner, dbTime(now.Add(importLease)), id}
	}
	var ids []int64
	err := s.conn(ctx).Raw(`UPDATE imports SET status = ?, lease_owner = ?, lease_until = ? WHERE id = `+pick+` AND `+claimable+` RETURNING id`,
		append(args, now)...).Scan(&ids).Error
	if err != nil {
		return 0, fmt.Errorf("models: claim import: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return ids[0], nil
}

// renewImportLease extends owner's lease on the import; it reports false
// when the import is no longer owner's.
func (s *Store) renewImportLease(ctx context.Context, id int64, owner string) (bool, error) {
	res := s.conn(ctx).Exec(`UPDATE imports SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = ?`,
		dbTime(dbNow().Add(importLease)), id, owner, ImportRunning)
	return res.RowsAffected == 1, res.Error
}

// releaseImport hands owner's lease back so another node may resume the
// import at once.
func (s *Store) releaseImport(ctx context.Context, id int64, owner string) error {
	return s.conn(ctx).Exec(`UPDATE imports SET lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = ?`,
		id, owner, ImportRunning).Error
}

// ProcessImport runs an import owner claimed (ClaimImport) from its stored
// file with its stored options, resuming after the last batch committed
// by whichever node ran it before. It holds the lease while it runs. When
// ctx is cancelled (the node is stopping) it hands the lease back after
// the batch in hand, leaving the import for another node; when another
// node took the import over meanwhile it stops without touching it. At
// the end, for better or worse, the stored file is deleted.
func (s *Store) ProcessImport(ctx context.Context, id int64, owner string) error {
	var rows []struct {
		Options    string
		LeaseOwner string
		Status     string
	}
	if err := s.conn(ctx).Raw(`SELECT options, lease_owner, status FROM imports WHERE id = ?`, id).Scan(&rows).Error; err != nil {
		return fmt.Errorf("models: process import %d: %w", id, err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("models: process import %d: %w", id, ErrNotFound)
	}
	if rows[0].LeaseOwner != owner || rows[0].Status != ImportRunning {
		return fmt.Errorf("models: process import %d: it is not claimed by %s: %w", id, owner, ErrConflict)
	}
	opts, err := decodeImportOptions(rows[0].Options)
	if err != nil {
		return fmt.Errorf("models: process import %d: %w", id, err)
	}
	im, err := s.Import(ctx, id)
	if err != nil {
		return err
	}
	return s.runClaimed(ctx, im, owner, s.ImportFile(ctx, id), im.TotalBytes, opts, true)
}

func decodeImportOptions(stored string) (ImportOptions, error) {
	var opts ImportOptions
	if err := json.Unmarshal([]byte(stored), &opts); err != nil {
		return opts, fmt.Errorf("the stored import options: %w", err)
	}
	return opts, nil
}
