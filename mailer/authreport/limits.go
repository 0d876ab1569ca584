package authreport

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits bound the reading of one report. Every zero value means the
// documented default.
type Limits struct {
	// MaxBytes is the largest report once decompressed. Zero: 20 MB, far
	// above the biggest real reports (a large sender's daily report from
	// a mailbox provider is a few hundred kilobytes of XML).
	MaxBytes int64
	// MaxRecords is the most rows of a DMARC report (or policies of a TLS
	// report, or failure details of one policy). Zero: 10000.
	MaxRecords int
	// MaxZipEntries is the most files a zip attachment may hold. Zero: 4
	// (a report zip holds one XML file).
	MaxZipEntries int
	// MaxJSONBytes is the largest TLS report once decompressed; JSON is
	// decoded whole, so its cap is lower. Zero: 2 MB.
	MaxJSONBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 20 << 20
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = 10000
	}
	if l.MaxZipEntries <= 0 {
		l.MaxZipEntries = 4
	}
	if l.MaxJSONBytes <= 0 {
		l.MaxJSONBytes = 2 << 20
	}
	return l
}

// RefusedError says why a report was not read: it is malformed, too big
// or hostile. Its text is safe to show to the sender and the user.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "report refused: " + e.Reason }

func refused(format string, a ...any) error { return &RefusedError{Reason: fmt.Sprintf(format, a...)} }

// IsRefused reports whether err says the report itself was refused.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// cappedReader reads at most max bytes and then fails, so that a reader
// decompressing a bomb stops at the limit instead of ending quietly (as
// io.LimitReader would, which could make a truncated report look whole).
type cappedReader struct {
	r    io.Reader
	left int64
	max  int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a report of exactly max bytes from a bigger one.
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, refused("larger than %d MB once decompressed", c.max>>20)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func capped(r io.Reader, max int64) io.Reader { return &cappedReader{r: r, left: max, max: max} }

// Format is how an attachment is packed.
type Format string

const (
	Plain Format = "plain"
	Gzip  Format = "gzip"
	Zip   Format = "zip"
)

// sniff says how data is packed, by its first bytes.
func sniff(data []byte) Format {
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		return Zip
	}
	return Plain
}

// open returns the decompressed content of an attachment, capped at
// l.MaxBytes; want is the file extension a zip entry must have (".xml"
// or ".json"). close must be called when done.
func open(data []byte, l Limits, want string) (r io.Reader, close func() error, err error) {
	switch sniff(data) {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, nil, refused("not a valid gzip file: %v", err)
		}
		return capped(zr, l.MaxBytes), zr.Close, nil
	case Zip:
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, nil, refused("not a valid zip file: %v", err)
		}
		// The central directory is read before any content: the count and
		// the declared sizes are checked before anything is inflated
		// (the declared size may lie, so the read is capped as well).
		if len(zr.File) > l.MaxZipEntries {
			return nil, nil, refused("the zip file holds %d files, at most %d are read", len(zr.File), l.MaxZipEntries)
		}
		var pick *zip.File
		for _, f := range zr.File {
			if f.FileInfo().IsDir() {
				continue
			}
			if f.UncompressedSize64 > uint64(l.MaxBytes) {
				return nil, nil, refused("the zip entry %q declares %d MB, more than the %d MB allowed", f.Name, f.UncompressedSize64>>20, l.MaxBytes>>20)
			}
			if pick == nil && strings.HasSuffix(strings.ToLower(f.Name), want) {
				pick = f
			}
		}
		if pick == nil {
			return nil, nil, refused("the zip file holds no %s file", want)
		}
		fr, err := pick.Open()
		if err != nil {
			return nil, nil, refused("the zip entry %q cannot be read: %v", pick.Name, err)
		}
		return &zipEntryReader{capped(fr, l.MaxBytes), pick.Name}, fr.Close, nil
	}
	return capped(bytes.NewReader(data), l.MaxBytes), func() error { return nil }, nil
}

// zipEntryReader names archive/zip's format error: reading an entry fails
// with it when the entry inflates to more than its declared size (a bomb
// hiding its size) or its checksum does not match.
type zipEntryReader struct {
	r    io.Reader
	name string
}

func (z *zipEntryReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) {
		err = refused("the zip entry %q inflates to more than it declares, or its checksum is wrong", z.name)
	}
	return n, err
}
