package authreport

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // reports from providers with legacy charsets in their text parts
)

// Kind is what an attachment holds.
type Kind string

const (
	KindDMARC Kind = "dmarc"
	KindTLS   Kind = "tlsrpt"
)

// Attachment is one report file found in a message, still packed.
type Attachment struct {
	Kind     Kind
	Filename string
	Data     []byte
}

// maxParts bounds the MIME parts looked at in one message.
const maxParts = 32

// Find returns the report attachments of a raw message: parts whose media
// type or file name is that of a DMARC aggregate report (text/xml,
// application/gzip, application/zip, *.xml, *.xml.gz, *.zip) or a TLS
// report (application/tlsrpt+json, application/tlsrpt+gzip, *.json,
// *.json.gz). A message holding none returns none and no error.
func Find(raw []byte) ([]Attachment, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, refused("the message cannot be read: %v", err)
	}
	f := finder{}
	err = f.walk(e, 0)
	return f.out, err
}

type finder struct {
	out   []Attachment
	parts int
}

func (f *finder) walk(e *message.Entity, depth int) error {
	f.parts++
	if f.parts > maxParts || depth > 4 {
		return refused("more than %d MIME parts, or parts nested too deep", maxParts)
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return refused("a MIME part cannot be read: %v", err)
			}
			if err := f.walk(p, depth+1); err != nil {
				return err
			}
		}
	}
	ct, params, _ := e.Header.ContentType()
	name := params["name"]
	if _, dp, err := e.Header.ContentDisposition(); err == nil && dp["filename"] != "" {
		name = dp["filename"]
	}
	kind := classify(strings.ToLower(ct), strings.ToLower(name))
	if kind == "" {
		return nil
	}
	data, err := io.ReadAll(e.Body)
	if err != nil {
		return refused("the attachment %q cannot be decoded: %v", name, err)
	}
	f.out = append(f.out, Attachment{Kind: kind, Filename: name, Data: data})
	return nil
}

// classify says which report a part holds by its media type and name.
func classify(ct, name string) Kind {
	switch {
	case strings.HasPrefix(ct, "application/tlsrpt"),
		strings.HasSuffix(name, ".json"), strings.HasSuffix(name, ".json.gz"):
		return KindTLS
	case ct == "text/xml", ct == "application/xml",
		ct == "application/gzip", ct == "application/x-gzip",
		ct == "application/zip", ct == "application/x-zip-compressed", ct == "application/x-zip",
		strings.HasSuffix(name, ".xml"), strings.HasSuffix(name, ".xml.gz"), strings.HasSuffix(name, ".zip"), strings.HasSuffix(name, ".gz"):
		return KindDMARC
	}
	return ""
}
