package models

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Import statuses, in the order an import passes through them.
const (
	ImportQueued    = "queued"
	ImportRunning   = "running"
	ImportFinished  = "finished"
	ImportFailed    = "failed"    // stopped by a problem with the file or the database
	ImportCancelled = "cancelled" // stopped by the caller; rows already imported stay
)

// Import modes: what a row does to a subscriber who already exists.
const (
	// ImportUpdate updates the subscriber's name and attributes from the
	// row and subscribes them to the list.
	ImportUpdate = "update"
	// ImportSkip leaves an existing subscriber exactly as they are: not
	// changed, not added to the list. The row counts as skipped.
	ImportSkip = "skip"
)

// MaxImportBytes is the largest file an import accepts. Callers check the
// upload's size against it; RunImport stops reading past it.
const MaxImportBytes = 1 << 30

// Import is one CSV import and its progress, updated at least once per
// batch while it runs so a page can poll it for a progress bar.
type Import struct {
	ID          int64
	ListID      int64 // 0 once the list has been deleted
	UserID      int64 // 0 when no user started it (API)
	Filename    string
	Mode        string
	LawfulBasis string
	Source      string // where the addresses came from, as declared
	Status      string
	TotalBytes  int64
	ReadBytes   int64
	RowsRead    int64 // data rows read so far, not counting the header
	Inserted    int64 // new subscribers
	Updated     int64 // existing subscribers changed or added to the list
	Skipped     int64 // existing subscribers left as they were
	Failed      int64 // rows refused; each has a line in the error report
	Message     string
	CreatedAt   time.Time
	FinishedAt  *time.Time
}

// Percent is how far the import has read through its file, 0 to 100.
func (im *Import) Percent() int {
	switch {
	case im.Status == ImportFinished:
		return 100
	case im.TotalBytes <= 0:
		return 0
	}
	return int(min(100, im.ReadBytes*100/im.TotalBytes))
}

// Done reports whether the import has stopped, for better or worse.
func (im *Import) Done() bool {
	return im.Status == ImportFinished || im.Status == ImportFailed || im.Status == ImportCancelled
}

// ImportOptions say how to read the rows of a file and what to do with them.
type ImportOptions struct {
	ListID      int64  // the list every imported subscriber joins
	Mode        string // ImportUpdate or ImportSkip
	LawfulBasis string // one of LawfulBases, recorded on every consent row
	Source      string // where the addresses came from, recorded on every consent row
	// Column indexes, counting from 0. EmailColumn is required; NameColumn
	// is -1 when the file has no name.
	EmailColumn, NameColumn int
	// AttributeColumns maps an attribute name to the column holding it.
	// Empty cells set nothing (an update keeps the old value).
	AttributeColumns map[string]int
	// Status is the subscription status new members get: SubConfirmed or
	// SubUnconfirmed. An import never downgrades a confirmed member and
	// never resubscribes someone who unsubscribed.
	Status string
	// Evidence is who ran the import, from where; it becomes the actor and
	// evidence columns of the consent rows. Its Source and LawfulBasis are
	// ignored: the import sets them.
	Evidence Evidence
}

// Validate returns a field→message map for a file with the given number of
// columns, empty when the options may be run.
func (o *ImportOptions) Validate(columns int) map[string]string {
	errs := map[string]string{}
	if o.ListID <= 0 {
		errs["list"] = "Choose the list to import into."
	}
	if o.Mode != ImportUpdate && o.Mode != ImportSkip {
		errs["mode"] = "Choose whether existing subscribers are updated or skipped."
	}
	if !ValidLawfulBasis(o.LawfulBasis) {
		errs["lawful_basis"] = "Declare the lawful basis on which you may mail these people."
	}
	o.Source = strings.TrimSpace(o.Source)
	switch {
	case o.Source == "":
		errs["source"] = "Say where these addresses came from, e.g. “sign-up sheet, Lyon fair 2025”."
	case len(o.Source) > 500:
		errs["source"] = "Keep the source under 500 characters."
	}
	if o.EmailColumn < 0 || o.EmailColumn >= columns {
		errs["email_column"] = "Choose the column that holds the email addresses."
	}
	if o.NameColumn >= columns || o.NameColumn < -1 {
		errs["name_column"] = "Choose a column of the file for the name, or none."
	}
	for name, col := range o.AttributeColumns {
		if strings.TrimSpace(name) == "" {
			errs["attributes"] = "Give every attribute column a name."
		} else if col < 0 || col >= columns {
			errs["attributes"] = fmt.Sprintf("The attribute %q points to a column the file does not have.", name)
		}
	}
	if o.Status != SubConfirmed && o.Status != SubUnconfirmed {
		errs["status"] = "Choose whether imported subscribers are confirmed or unconfirmed."
	}
	return errs
}

// ErrImportOptions is wrapped by RunImport when its options do not validate.
var ErrImportOptions = errors.New("the import settings are incomplete")

// CreateImport records a new import, queued. RunImport overwrites its list,
// mode, basis, source and size with the options it actually runs with.
func (s *Store) CreateImport(ctx context.Context, im *Import) error {
	im.CreatedAt = dbNow()
	if im.Status == "" {
		im.Status = ImportQueued
	}
	err := s.conn(ctx).Raw(`INSERT INTO imports (list_id, user_id, filename, mode, lawful_basis, source, status, total_bytes, message, created_at)
		VALUES (NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		im.ListID, im.UserID, im.Filename, im.Mode, im.LawfulBasis, im.Source, im.Status, im.TotalBytes, im.Message, im.CreatedAt).
		Scan(&im.ID).Error
	if err != nil {
		return fmt.Errorf("models: create import: %w", err)
	}
	return nil
}

const importColumns = `id, COALESCE(list_id, 0) AS list_id, COALESCE(user_id, 0) AS user_id, filename, mode, lawful_basis, source,
	status, total_bytes, read_bytes, rows_read, inserted, updated, skipped, failed, message, created_at, finished_at`

// Import returns one import with its progress.
func (s *Store) Import(ctx context.Context, id int64) (*Import, error) {
	var out []Import
	if err := s.conn(ctx).Raw("SELECT "+importColumns+" FROM imports WHERE id = ?", id).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: import %d: %w", id, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("models: import %d: %w", id, ErrNotFound)
	}
	return &out[0], nil
}

// Imports returns the most recent imports, newest first.
func (s *Store) Imports(ctx context.Context, limit int) ([]Import, error) {
	if limit <= 0 {
		limit = 50
	}
	var out []Import
	if err := s.conn(ctx).Raw("SELECT "+importColumns+" FROM imports ORDER BY id DESC LIMIT ?", limit).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: imports: %w", err)
	}
	return out, nil
}

// importBatchRows is how many rows share one transaction. Each batch
// rewrites most leaf pages of the email index (its keys land anywhere), so
// bigger batches write far less: 20,000-row batches import 1.7 times as fast
// as 5,000-row ones at 600,000 subscribers. One holds the write lock for
// about a second; three batches at most are in memory.
var importBatchRows = 20000

// RunImport reads the CSV in r (its header first, as ReadCSVHeader checks
// it) and imports its rows as opts say, updating the import's progress as it
// goes. totalBytes is the file's size, for the progress bar. The file is
// the caller's: no other node can resume the import (see ProcessImport for
// one that can).
//
// Rows are committed in batches; a bad row is reported in the error report
// (see WriteImportErrors) and never costs the rows before or after it. When
// ctx is cancelled the import stops as ImportCancelled after the batch in
// hand, keeping what was imported. A problem with the file itself (not UTF-8,
// a record larger than MaxRecordBytes, larger than MaxImportBytes) stops it
// as ImportFailed with a *CSVError whose text is the import's message.
func (s *Store) RunImport(ctx context.Context, id int64, r io.Reader, totalBytes int64, opts ImportOptions) error {
	im, err := s.Import(ctx, id)
	if err != nil {
		return err
	}
	owner := NewLeaseOwner("")
	res := s.conn(ctx).Exec(`UPDATE imports SET status = ?, lease_owner = ?, lease_until = ? WHERE id = ? AND status = ?`,
		ImportRunning, owner, dbTime(dbNow().Add(importLease)), id, ImportQueued)
	if res.Error != nil {
		return fmt.Errorf("models: run import %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: run import %d: it is %s, not queued: %w", id, im.Status, ErrConflict)
	}
	return s.runClaimed(ctx, im, owner, r, totalBytes, opts, false)
}

// runClaimed runs an import whose lease owner holds, from r. im is the
// row as claimed: a resumed import (resumable, with rows already read)
// carries on after its last committed batch.
func (s *Store) runClaimed(ctx context.Context, im *Import, owner string, r io.Reader, totalBytes int64, opts ImportOptions, resumable bool) (err error) {
	id := im.ID
	run := &importRun{s: s, id: id, owner: owner, opts: opts, touched: idSet{}}
	if resumable && im.RowsRead > 0 {
		run.resumeAt = im.ReadBytes
		run.done = importProgress{RowsRead: im.RowsRead, ReadBytes: im.ReadBytes, Inserted: im.Inserted,
			Updated: im.Updated, Skipped: im.Skipped, Failed: im.Failed}
	}
	// The lease is renewed while the import runs; a run whose lease was
	// taken over stops (and its batches are fenced: see writeRows).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go run.holdLease(ctx, cancel)
	// Whatever happens, the row ends in a final state with a message for the
	// person who started it; rows already committed stay.
	defer func() {
		status, msg := ImportFinished, ""
		var ce *CSVError
		switch {
		case errors.Is(err, errLeaseLost) || errors.Is(context.Cause(ctx), errLeaseLost):
			slog.Warn("import taken over by another node", "import", id, "owner", owner, "rows", run.done.RowsRead)
			err = fmt.Errorf("models: run import %d: %w", id, errLeaseLost)
			return
		case err == nil:
		case resumable && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
			// The node is stopping: another one resumes the import.
			if rerr := s.releaseImport(context.WithoutCancel(ctx), id, owner); rerr != nil {
				slog.Error("import lease not handed back; another node resumes it once it runs out", "import", id, "err", rerr)
			}
			slog.Info("import handed over", "import", id, "rows", run.done.RowsRead)
			err = fmt.Errorf("models: run import %d: %w", id, err)
			return
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			status, msg = ImportCancelled, fmt.Sprintf("Stopped after %d rows; the rows before that were imported.", run.done.RowsRead)
		case errors.As(err, &ce):
			status, msg = ImportFailed, ce.Error()
		case errors.Is(err, ErrImportOptions):
			status, msg = ImportFailed, strings.TrimPrefix(err.Error(), fmt.Sprintf("models: run import %d: ", id))
		default:
			status, msg = ImportFailed, "The import stopped because of a database error; the rows before it were imported."
			slog.Error("import failed", "import", id, "rows", run.done.RowsRead, "err", err)
		}
		if ferr := run.finish(context.WithoutCancel(ctx), status, msg); ferr != nil && err == nil {
			err = ferr
		}
		if err != nil {
			err = fmt.Errorf("models: run import %d: %w", id, err)
		}
	}()
	if totalBytes > MaxImportBytes {
		return &CSVError{Msg: fmt.Sprintf("The file is %s; the largest file an import takes is %s. Split it into smaller files.", byteSize(totalBytes), byteSize(MaxImportBytes))}
	}
	src, err := newCSVSource(r)
	if err != nil {
		return err
	}
	if errs := opts.Validate(len(src.header)); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, m := range errs {
			msgs = append(msgs, m)
		}
		slices.Sort(msgs)
		return fmt.Errorf("%w: %s", ErrImportOptions, strings.Join(msgs, " "))
	}
	var listN int64
	if err := s.conn(ctx).Raw("SELECT count(*) FROM lists WHERE id = ?", opts.ListID).Scan(&listN).Error; err != nil {
		return err
	}
	if listN == 0 {
		return fmt.Errorf("%w: the list no longer exists", ErrImportOptions)
	}
	err = s.conn(ctx).Exec(`UPDATE imports SET list_id = ?, mode = ?, lawful_basis = ?, source = ?, total_bytes = ? WHERE id = ? AND lease_owner = ?`,
		opts.ListID, opts.Mode, opts.LawfulBasis, opts.Source, totalBytes, id, owner).Error
	if err != nil {
		return err
	}
	slog.Info("import started", "import", id, "list", opts.ListID, "mode", opts.Mode, "bytes", totalBytes, "resume_at", run.resumeAt, "owner", owner)
	started := time.Now()
	defer func() {
		slog.Info("import ended", "import", id, "rows", run.done.RowsRead, "inserted", run.done.Inserted, "updated", run.done.Updated,
			"skipped", run.done.Skipped, "failed", run.done.Failed, "seconds", time.Since(started).Seconds(), "err", err)
	}()
	return run.run(ctx, src)
}

// holdLease renews the run's lease until ctx ends, and cancels the run
// with errLeaseLost when another node has taken the import.
func (r *importRun) holdLease(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(importLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, r.renewed.Load())) < importLease/3 {
			continue // a batch renewed it meanwhile
		}
		ok, err := r.s.renewImportLease(ctx, r.id, r.owner)
		switch {
		case err != nil && ctx.Err() == nil:
			// The batches are fenced: if the lease runs out meanwhile, the
			// next commit finds out.
			slog.Warn("import lease not renewed", "import", r.id, "err", err)
		case err == nil && !ok:
			cancel(errLeaseLost)
			return
		}
	}
}

// importRun is the state of one running import.
type importRun struct {
	s     *Store
	id    int64
	owner string // the lease owner; every commit checks the import is still its
	opts  ImportOptions
	// resumeAt is the file offset after the last batch a previous run
	// committed: rows up to it are read again but not written.
	resumeAt int64
	// renewed is when a committed batch last renewed the lease (Unix
	// nanoseconds): holdLease renews it only in longer gaps, since on
	// SQLite its renewal waits behind the import's own write lock.
	renewed atomic.Int64
	conn    *sql.Conn
	done    importProgress // counts committed so far
	touched idSet          // subscribers this import already handled: later rows with them are duplicates
}

// importProgress is what the imports row shows.
type importProgress struct {
	RowsRead, ReadBytes, Inserted, Updated, Skipped, Failed int64
}

func (p *importProgress) add(q importProgress) {
	p.RowsRead += q.RowsRead
	p.ReadBytes = max(p.ReadBytes, q.ReadBytes)
	p.Inserted += q.Inserted
	p.Updated += q.Updated
	p.Skipped += q.Skipped
	p.Failed += q.Failed
}

// run reads the file in one goroutine and writes batches in this one, so
// parsing and validation overlap the database work.
func (r *importRun) run(ctx context.Context, src *csvSource) error {
	conn, err := r.s.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.conn = conn
	if r.s.dialect == SQLite {
		// A 64 MiB page cache holds most of the indexes' hot pages. Temporary
		// structures (statement journals, json_each sets) go to temporary
		// files rather than memory: in memory, the pure-Go allocator hands
		// their pages back to the kernel and faults them in again for every
		// statement, which cost a third of the CPU (measured: 20,100 ->
		// 30,100 rows/s and 281 -> 217 MiB peak at 1M rows). Both settings
		// are per connection: put them back before it returns to the pool.
		if _, err := conn.ExecContext(ctx, "PRAGMA cache_size = -65536; PRAGMA temp_store = FILE"); err != nil {
			return err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA cache_size = -2000; PRAGMA temp_store = DEFAULT")
	}

	if r.s.dialect == Postgres {
		if err := prepareStage(ctx, conn); err != nil {
			return err
		}
	}

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	if r.s.dialect == SQLite {
		// Checkpoint from another connection, on the other core, instead of
		// inside every commit of the import.
		if _, err := conn.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
			return err
		}
		done := make(chan struct{})
		go r.s.checkpointUntil(done)
		defer func() {
			close(done)
			conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA wal_autocheckpoint = 1000")
		}()
	}
	batches := make(chan *rowBatch) // at most three batches in memory
	var readErr error
	go func() {
		defer close(batches)
		readErr = src.batches(pctx, r.s.newRowParser(r.opts, src), batches)
	}()
	var writeErr error
	var committed idSet // lines of the error report a resumed run finds
	if r.resumeAt > 0 {
		if committed, writeErr = r.reportedLines(ctx); writeErr != nil {
			stop()
		}
	}
	for b := range batches {
		if writeErr == nil {
			writeErr = ctx.Err()
		}
		if writeErr == nil && r.resumeAt > 0 {
			b, writeErr = r.skipCommitted(ctx, b, committed)
		}
		if writeErr == nil && b != nil {
			writeErr = r.write(ctx, b)
		}
		if writeErr != nil {
			stop() // and drain, so the reader can finish
		}
	}
	if writeErr != nil {
		return writeErr
	}
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}

// reportedLines returns the lines a previous run of the import wrote to
// its error report.
func (r *importRun) reportedLines(ctx context.Context) (idSet, error) {
	rows, err := r.conn.QueryContext(ctx, r.s.rebind(`SELECT row_num FROM import_errors WHERE import_id = ?`), r.id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lines := idSet{}
	for rows.Next() {
		var line int64
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		lines.add(line)
	}
	return lines, rows.Err()
}

// skipCommitted drops the rows of b that a previous run committed and
// returns the rest, nil when none is left. The subscribers the dropped
// rows imported count as handled (touched), so a later line with the same
// address is reported as a duplicate, as in a run that never stopped.
func (r *importRun) skipCommitted(ctx context.Context, b *rowBatch, reported idSet) (*rowBatch, error) {
	i := 0
	for i < len(b.rows) && b.rows[i].end <= r.resumeAt {
		i++
	}
	var keys []string
	for _, row := range b.rows[:i] {
		if row.fail == "" && row.key != "" && !reported.has(row.line) {
			keys = append(keys, row.key)
		}
	}
	if len(keys) > 0 {
		q := `SELECT id FROM subscribers WHERE ` + r.s.inJSONText("lower(email)")
		if r.s.dialect == Postgres {
			q = `SELECT s.id FROM ` + pgEmailProbe
		}
		rows, err := r.conn.QueryContext(ctx, r.s.rebind(q), jsonArray(keys))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			r.touched.add(id)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if i == len(b.rows) {
		return nil, nil
	}
	b.rows = b.rows[i:]
	return b, nil
}

// checkpointUntil copies the WAL into the database file every second until
// done is closed, then once more.
func (s *Store) checkpointUntil(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			s.sql.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			return
		case <-t.C:
			if _, err := s.sql.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				slog.Warn("checkpoint during import", "err", err)
			}
		}
	}
}

// write commits one batch. When the database refuses the batch, each row is
// retried in its own transaction so a single bad row costs only itself.
func (r *importRun) write(ctx context.Context, b *rowBatch) error {
	res, err := r.writeRows(ctx, b.rows, b.end)
	if err == nil {
		r.commit(res)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, errLeaseLost) {
		return err
	}
	slog.Warn("import batch refused, retrying row by row", "import", r.id, "first_row", b.rows[0].line, "err", err)
	for i := range b.rows {
		end := b.rows[i].end
		if i == len(b.rows)-1 {
			end = b.end
		}
		res, err := r.writeRows(ctx, b.rows[i:i+1], end)
		if err == nil {
			r.commit(res)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errLeaseLost) {
			return err
		}
		row := b.rows[i]
		slog.Warn("import row refused", "import", r.id, "row", row.line, "err", err)
		row.fail = "The database refused this row."
		res, err = r.writeRows(ctx, []importRow{row}, end)
		if err != nil {
			return err // even the error report cannot be written: stop
		}
		r.commit(res)
	}
	return nil
}

func (r *importRun) commit(res *batchResult) {
	r.renewed.Store(time.Now().UnixNano()) // the batch renewed the lease
	r.done.add(res.importProgress)
	for _, id := range res.touched {
		r.touched.add(id)
	}
}

// finish records the final status and message.
func (r *importRun) finish(ctx context.Context, status, msg string) error {
	err := r.s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE imports SET status = ?, message = ?, finished_at = ?, lease_until = NULL WHERE id = ? AND lease_owner = ?`,
			status, msg, dbNow(), r.id, r.owner)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errLeaseLost
		}
		return tx.Exec(`DELETE FROM import_chunks WHERE import_id = ?`, r.id).Error
	})
	if err != nil {
		return fmt.Errorf("record the end of the import: %w", err)
	}
	return nil
}

// WriteImportErrors writes an import's error report as CSV: one line per
// refused row with its line number in the file, the address as written and
// the reason, in file order.
func (s *Store) WriteImportErrors(ctx context.Context, id int64, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"row", "email", "reason"}); err != nil {
		return fmt.Errorf("models: import %d errors: %w", id, err)
	}
	after := int64(-1)
	for {
		var rows []struct {
			RowNum int64
			Email  string
			Reason string
		}
		err := s.conn(ctx).Raw(`SELECT row_num, email, reason FROM import_errors
			WHERE import_id = ? AND row_num > ? ORDER BY row_num LIMIT 5000`, id, after).Scan(&rows).Error
		if err != nil {
			return fmt.Errorf("models: import %d errors: %w", id, err)
		}
		if len(rows) == 0 {
			break
		}
		for _, e := range rows {
			if err := cw.Write([]string{fmt.Sprint(e.RowNum), csvSafe(e.Email), e.Reason}); err != nil {
				return fmt.Errorf("models: import %d errors: %w", id, err)
			}
		}
		after = rows[len(rows)-1].RowNum
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("models: import %d errors: %w", id, err)
	}
	return nil
}

// csvSafe keeps a spreadsheet from running a cell that starts like a
// formula (CSV injection) in files Herald writes.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", (n+1023)/1024)
}
