package models

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// CSVError is a problem with an uploaded file as a whole. Its text is written
// for the marketer who uploaded it and is safe to show.
type CSVError struct {
	Line int64 // 0 when the problem is not on one line
	Msg  string
}

func (e *CSVError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("Line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Limits on what a CSV file may look like.
const (
	// MaxRecordBytes is the largest single record (row). Anything larger is
	// almost always a quote that is never closed, swallowing the rest of the
	// file; the limit keeps that from being read into memory.
	MaxRecordBytes = 1 << 20
	// MaxCSVColumns is the most columns a file may have.
	MaxCSVColumns = 500
	// headerSample is how much of the file ReadCSVHeader checks.
	headerSample = 1 << 20
)

const notUTF8 = "is not UTF-8 text. Save the file as “CSV UTF-8” (in Excel: File › Save As › CSV UTF-8) and upload it again."

// ReadCSVHeader reads the start of a CSV file and returns the names in its
// header row, for the column-mapping form. It detects the delimiter (comma,
// semicolon or tab) and checks what a marketer can fix before importing: the
// file is UTF-8 CSV (not a workbook, not UTF-16), it has a header row and at
// least one row below it. Errors are *CSVError.
func ReadCSVHeader(r io.Reader) ([]string, error) {
	sample, err := io.ReadAll(io.LimitReader(r, headerSample))
	if err != nil {
		return nil, fmt.Errorf("models: read csv: %w", err)
	}
	src, err := newCSVSource(bytes.NewReader(sample))
	if err != nil {
		return nil, err
	}
	// Check the sample line by line, so the message can point at a line,
	// leaving out a last line the sample may have cut in half.
	lines := bytes.TrimPrefix(sample, utf8BOM)
	if len(sample) == headerSample {
		if i := bytes.LastIndexByte(lines, '\n'); i >= 0 {
			lines = lines[:i]
		}
	}
	// A few rows with bad bytes are rejected one by one when the import
	// runs, and the good rows kept. Only a file where most lines are not
	// UTF-8 (or whose header is not) is in another encoding, and refused whole, so that it is not
	// imported as thousands of rejected rows.
	bad, first, total := 0, 0, 0
	for n, line := range bytes.Split(lines, []byte{'\n'}) {
		if n > 0 && len(bytes.TrimSpace(line)) > 0 {
			total++ // rows below the header
		}
		if !utf8.Valid(line) {
			if bad++; first == 0 {
				first = n + 1
			}
		}
	}
	if bad > 0 && bad*2 > total {
		return nil, &CSVError{Line: int64(first), Msg: "this line and most others " + strings.Replace(notUTF8, "is not", "are not", 1)}
	}
	for {
		rec, err := src.cr.Read()
		if err == io.EOF {
			return nil, &CSVError{Msg: "The file has a header row but no rows below it."}
		}
		if err != nil || !blankRecord(rec) {
			break // a row to import, or one the import will report
		}
	}
	return src.header, nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ReadCSVPreview returns the first n records below the header, for the
// mapping step to show what each column holds. Bytes that are not UTF-8
// show as U+FFFD (the import rejects those rows).
func ReadCSVPreview(r io.Reader, n int) ([][]string, error) {
	src, err := newCSVSource(io.LimitReader(r, headerSample))
	if err != nil {
		return nil, err
	}
	src.cr.ReuseRecord = false
	var out [][]string
	for len(out) < n {
		rec, err := src.cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			continue // the import reports this row with its reason
		}
		if blankRecord(rec) {
			continue
		}
		for i, f := range rec {
			rec[i] = strings.ToValidUTF8(f, "\uFFFD")
		}
		out = append(out, rec)
	}
	return out, nil
}

// csvSource reads records from a CSV file after its header.
type csvSource struct {
	cr     *csv.Reader
	lim    *recordLimiter
	bom    int64
	header []string
}

// newCSVSource sniffs the delimiter from the header line and reads the
// header.
func newCSVSource(r io.Reader) (*csvSource, error) {
	lim := &recordLimiter{r: r}
	br := bufio.NewReaderSize(lim, 64<<10)
	head, err := peekHeader(br)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("models: read csv: %w", err)
	}
	src := &csvSource{lim: lim}
	switch {
	case len(bytes.TrimSpace(head)) == 0:
		return nil, &CSVError{Msg: "The file is empty."}
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return nil, &CSVError{Msg: "This is an Excel or OpenDocument workbook, not a CSV file. Save it as “CSV UTF-8” and upload that."}
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return nil, &CSVError{Msg: "The file is UTF-16 text. Save it as “CSV UTF-8” and upload it again."}
	case bytes.HasPrefix(head, utf8BOM):
		br.Discard(len(utf8BOM))
		head = head[len(utf8BOM):]
		src.bom = int64(len(utf8BOM))
	}
	line, ok := firstLine(head)
	if !ok && len(head) == 64<<10 {
		return nil, &CSVError{Line: 1, Msg: "the header row is longer than 64 KiB. Is this a CSV file?"}
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, &CSVError{Msg: "The file holds binary data, not text. Upload a CSV file."}
	}
	if !utf8.Valid(line) {
		return nil, &CSVError{Line: 1, Msg: "the header row " + notUTF8}
	}
	src.cr = csv.NewReader(br)
	src.cr.Comma = sniffDelimiter(line)
	src.cr.FieldsPerRecord = -1
	src.cr.ReuseRecord = true
	header, err := src.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &CSVError{Line: 1, Msg: "the header row cannot be read: " + parseProblem(pe.Err)}
		}
		return nil, src.readError(err)
	}
	if len(header) > MaxCSVColumns {
		return nil, &CSVError{Line: 1, Msg: fmt.Sprintf("the file has %d columns; an import takes at most %d.", len(header), MaxCSVColumns)}
	}
	src.header = make([]string, len(header))
	for i, h := range header {
		src.header[i] = strings.TrimSpace(h)
	}
	src.mark()
	return src, nil
}

// peekHeader returns the start of the input up to at least the end of the
// header line, reading no more than it must: a slow upload is not waited
// for past its first line.
func peekHeader(br *bufio.Reader) ([]byte, error) {
	n := 4
	for {
		b, err := br.Peek(n)
		if err != nil {
			return b, err
		}
		b, _ = br.Peek(br.Buffered())
		if _, ok := firstLine(bytes.TrimPrefix(b, utf8BOM)); ok {
			return b, nil
		}
		n = max(n, br.Buffered()) + 1
	}
}

// firstLine returns the header line: up to the first newline outside quotes.
func firstLine(b []byte) ([]byte, bool) {
	quoted := false
	for i, c := range b {
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\n' && !quoted:
			return bytes.TrimSuffix(b[:i], []byte{'\r'}), true
		}
	}
	return b, false
}

// sniffDelimiter picks whichever of comma, semicolon (Excel in much of
// Europe) and tab appears most often outside quotes in the header line. A
// file with one column has none of them and reads as comma-separated.
func sniffDelimiter(line []byte) rune {
	counts := map[byte]int{}
	quoted := false
	for _, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ',' || c == ';' || c == '\t'):
			counts[c]++
		}
	}
	best := byte(',')
	for _, c := range []byte{';', '\t'} {
		if counts[c] > counts[best] {
			best = c
		}
	}
	return rune(best)
}

// offset is how far into the file the reader has consumed.
func (src *csvSource) offset() int64 { return src.bom + src.cr.InputOffset() }

// mark tells the limiter a record ended here.
func (src *csvSource) mark() { src.lim.mark = src.offset() }

func (src *csvSource) readError(err error) error {
	switch {
	case errors.Is(err, errRecordTooLarge):
		return &CSVError{Msg: fmt.Sprintf("A row after line %d is larger than %s. This usually means a quote (\") that is never closed; check the rows after that line.",
			src.lastLine(), byteSize(MaxRecordBytes))}
	case errors.Is(err, errFileTooLarge):
		return &CSVError{Msg: fmt.Sprintf("The file is larger than %s, the largest an import takes. Split it into smaller files.", byteSize(MaxImportBytes))}
	}
	return err
}

func (src *csvSource) lastLine() int64 {
	line, _ := src.cr.FieldPos(0)
	return int64(line)
}

var (
	errRecordTooLarge = errors.New("csv record too large")
	errFileTooLarge   = errors.New("csv file too large")
)

// recordLimiter fails a read once the reader has gone MaxRecordBytes past
// the end of the last record, or past MaxImportBytes in all, so no input can
// make the CSV reader buffer without end.
type recordLimiter struct {
	r    io.Reader
	n    int64 // bytes read so far
	mark int64 // where the last complete record ended
}

func (l *recordLimiter) Read(p []byte) (int, error) {
	switch {
	case l.n >= MaxImportBytes+1:
		return 0, errFileTooLarge
	case l.n-l.mark > MaxRecordBytes+64<<10:
		return 0, errRecordTooLarge
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

func parseProblem(err error) string {
	switch {
	case errors.Is(err, csv.ErrBareQuote):
		return `a quote (") appears inside a value that does not start with a quote; double it ("") or quote the whole value.`
	case errors.Is(err, csv.ErrQuote):
		return `a quoted value is not closed, or a quote inside it is not doubled ("").`
	}
	return err.Error()
}

func blankRecord(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// importRow is one data row, parsed and checked as far as it can be without
// the database.
type importRow struct {
	line       int64  // where the record starts in the file; the header is line 1
	end        int64  // file offset after the record, for progress
	raw        string // the address as written, for the error report
	email      string // normalised
	key        string // email as the database's lower() folds it: the uniqueness key
	name       string
	hasName    bool
	attrJSON   string // a JSON object of the row's non-empty attribute cells
	json       []byte // [email, name, attributes] for the insert of a new subscriber
	hash       string // SuppressionHash(email)
	domainHash string // SuppressionHash("@" + domain)
	fail       string // why the row is refused before reaching the database
}

// rowBatch is a run of rows written in one transaction.
type rowBatch struct {
	rows []importRow
	end  int64 // file offset after the last row
}

// rowParser turns records into importRows.
type rowParser struct {
	opts    ImportOptions
	columns int
	lower   func(string) string
	domains map[string]string // domain → suppression hash, a small cache
	// Attribute names in order, and the column of each.
	attrNames []string
	attrCols  []int
}

func (s *Store) newRowParser(opts ImportOptions, src *csvSource) *rowParser {
	p := &rowParser{opts: opts, columns: len(src.header), lower: s.emailKey, domains: map[string]string{}}
	for name := range opts.AttributeColumns {
		p.attrNames = append(p.attrNames, name)
	}
	slices.Sort(p.attrNames)
	for _, name := range p.attrNames {
		p.attrCols = append(p.attrCols, opts.AttributeColumns[name])
	}
	return p
}

// batches reads every record after the header and sends rows in batches.
func (src *csvSource) batches(ctx context.Context, p *rowParser, out chan<- *rowBatch) error {
	b := &rowBatch{}
	send := func() error {
		if len(b.rows) == 0 {
			return nil
		}
		b.end = src.offset()
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b = &rowBatch{rows: make([]importRow, 0, importBatchRows)}
		return nil
	}
	for {
		rec, err := src.cr.Read()
		var pe *csv.ParseError
		switch {
		case err == io.EOF:
			return send()
		case errors.As(err, &pe):
			src.mark()
			b.rows = append(b.rows, importRow{line: int64(pe.StartLine), end: src.offset(), fail: "The row cannot be read: " + parseProblem(pe.Err)})
		case err != nil:
			if serr := send(); serr != nil {
				return serr
			}
			return src.readError(err)
		case blankRecord(rec):
			src.mark()
			continue
		default:
			src.mark()
			b.rows = append(b.rows, p.parse(rec, src.lastLine(), src.offset()))
		}
		if len(b.rows) >= importBatchRows {
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// parse checks one record and prepares what the database needs.
func (p *rowParser) parse(rec []string, line, end int64) importRow {
	row := importRow{line: line, end: end}
	if p.opts.EmailColumn < len(rec) {
		row.raw = strings.TrimSpace(rec[p.opts.EmailColumn])
	}
	for _, f := range rec {
		if !utf8.ValidString(f) {
			row.raw = strings.ToValidUTF8(row.raw, "\uFFFD")
			row.fail = "The row " + notUTF8
			return row
		}
	}
	if len(rec) != p.columns {
		row.fail = fmt.Sprintf("The row has %d columns but the header has %d.", len(rec), p.columns)
		return row
	}
	if row.raw == "" {
		row.fail = "There is no email address in this row."
		return row
	}
	// Herald's own exports quote cells that would start a formula.
	email, err := NormalizeEmail(unguardCell(row.raw))
	if err != nil {
		var ie *InvalidEmailError
		if errors.As(err, &ie) {
			row.fail = "Not a valid email address: " + ie.Reason + "."
		} else {
			row.fail = "Not a valid email address."
		}
		return row
	}
	row.email = email
	row.key = p.lower(email)
	if c := p.opts.NameColumn; c >= 0 {
		row.name = unguardCell(strings.TrimSpace(rec[c]))
		row.hasName = row.name != ""
	}
	for _, f := range rec {
		if strings.IndexByte(f, 0) >= 0 {
			row.fail = "The row contains a NUL character."
			return row
		}
	}
	row.attrJSON = "{}"
	var attrs []byte
	for i, name := range p.attrNames {
		if v := unguardCell(strings.TrimSpace(rec[p.attrCols[i]])); v != "" {
			if attrs == nil {
				attrs = append(attrs, '{')
			} else {
				attrs = append(attrs, ',')
			}
			attrs = appendJSONString(attrs, name)
			attrs = append(attrs, ':')
			attrs = appendJSONString(attrs, v)
		}
	}
	if attrs != nil {
		row.attrJSON = string(append(attrs, '}'))
	}
	b := make([]byte, 0, len(email)+len(row.name)+len(row.attrJSON)+16)
	b = append(b, '[')
	b = appendJSONString(b, email)
	b = append(b, ',')
	b = appendJSONString(b, row.name)
	b = append(b, ',')
	b = appendJSONString(b, row.attrJSON)
	row.json = append(b, ']')
	row.hash = SuppressionHash(email)
	domain := EmailDomain(email)
	dh, ok := p.domains[domain]
	if !ok {
		if len(p.domains) > 10000 {
			clear(p.domains)
		}
		dh = SuppressionHash("@" + domain)
		p.domains[domain] = dh
	}
	row.domainHash = dh
	return row
}

// emailKey folds an address the way the database's lower() does, which is
// what the unique index on subscribers compares: ASCII only on SQLite.
func (s *Store) emailKey(email string) string {
	if s.dialect == Postgres {
		return strings.ToLower(email)
	}
	for i := 0; i < len(email); i++ {
		if c := email[i]; 'A' <= c && c <= 'Z' {
			b := []byte(email)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return email
}

// idSet is a sparse bitmap of subscriber ids: a million ids cost about
// 128 KiB, where a map of addresses would cost a hundred megabytes.
type idSet map[int64]*[1024]uint64

func (m idSet) add(id int64) {
	b := m[id>>16]
	if b == nil {
		b = new([1024]uint64)
		m[id>>16] = b
	}
	i := id & 0xFFFF
	b[i>>6] |= 1 << (i & 63)
}

func (m idSet) has(id int64) bool {
	b := m[id>>16]
	if b == nil {
		return false
	}
	i := id & 0xFFFF
	return b[i>>6]&(1<<(i&63)) != 0
}
