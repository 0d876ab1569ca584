package bounce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// ErrNotMessage is wrapped by the errors of ParseStrict for input that is
// not a readable message; the error's text says what is wrong.
var ErrNotMessage = errors.New("not a readable message")

func notMessage(format string, args ...any) error {
	return fmt.Errorf("bounce: %w: %s", ErrNotMessage, fmt.Sprintf(format, args...))
}

// checkMessage reports why raw (with LF line endings) cannot be a message:
// binary data, nothing at all, no header, a header cut off before its end,
// or a multipart report cut off before its last part that is not the
// quoted original. A quoted original cut short is normal (MTAs truncate
// what they return) and is no error.
func checkMessage(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return notMessage("the file is empty")
	}
	if why := binary(raw); why != "" {
		return notMessage("binary data, not text (%s)", why)
	}
	body := trimEnvelope(raw)
	first, _, _ := bytes.Cut(body, []byte("\n"))
	if !headerLineRe.Match(first) {
		return notMessage("it does not start with a header field (found %q)", clip(string(first), 40))
	}
	end := bytes.Index(body, []byte("\n\n"))
	if end < 0 {
		return notMessage("truncated: the header never ends (no blank line before the body)")
	}
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(body[:end+2]), 512))
	if err != nil {
		return notMessage("the header cannot be read: %v", err)
	}
	return checkMultipart(h, body[end+2:])
}

// binary returns why raw looks like binary data, or "": a NUL byte among
// its first bytes (where file formats keep their signature), or more than
// one control character in fifty (other than tab, form feed and the ESC of
// ISO-2022-JP) in the first 64 KiB. A stray NUL further on occurs in real
// bounces and is no reason.
func binary(raw []byte) string {
	if i := bytes.IndexByte(raw[:min(len(raw), 512)], 0); i >= 0 {
		return fmt.Sprintf("a NUL byte at offset %d", i)
	}
	head := raw[:min(len(raw), 64<<10)]
	ctl := 0
	for _, c := range head {
		if c < 0x20 && c != '\n' && c != '\t' && c != '\f' && c != 0x1b || c == 0x7f || c == 0 {
			ctl++
		}
	}
	if ctl*50 > len(head) {
		return fmt.Sprintf("%d control characters in %d bytes", ctl, len(head))
	}
	return ""
}

// checkMultipart finds a multipart message cut off inside a part that is
// not a quoted original: with its boundary declared, the body must hold a
// first part, and either the closing delimiter or a last part that quotes
// the original message.
func checkMultipart(h textproto.Header, body []byte) error {
	ct := h.Get("Content-Type")
	if !strings.HasPrefix(mediaType(ct), "multipart/") {
		return nil
	}
	b := boundaryOf(ct)
	if b == "" {
		return nil // read as plain text; nothing to check
	}
	delim := []byte("--" + b)
	var types []string // the media type of each part begun
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			j = len(body) - i
		}
		line := body[i : i+j]
		i += j + 1
		if !bytes.HasPrefix(line, delim) {
			continue
		}
		rest := bytes.TrimSpace(line[len(delim):])
		if bytes.HasPrefix(rest, []byte("--")) {
			return nil // closed
		}
		if len(rest) == 0 && i <= len(body) {
			types = append(types, partType(body[i:]))
		}
	}
	if len(types) == 0 {
		return nil // a boundary that never appears: the body is read as text
	}
	// Not closed. Cut inside the quoted original, or after the report's
	// machine-readable part, is how MTAs return mail; cut inside the only
	// part begun, before the report proper, leaves nothing to go by.
	switch last := types[len(types)-1]; {
	case len(types) > 1:
		return nil
	case last == "message/rfc822", last == "message/global", last == "text/rfc822-headers",
		last == "message/rfc822-headers", last == "message/partial", last == "message/delivery-status",
		last == "message/global-delivery-status", last == "message/feedback-report", strings.HasPrefix(last, "multipart/"):
		return nil
	default:
		return notMessage("truncated: the message ends inside its first part (%s), before the closing boundary %q and before any report", last, b)
	}
}

// boundaryOf returns the boundary parameter of a Content-Type value.
func boundaryOf(ct string) string {
	lower := strings.ToLower(ct)
	i := strings.Index(lower, "boundary=")
	if i < 0 {
		return ""
	}
	v := ct[i+len("boundary="):]
	if strings.HasPrefix(v, `"`) {
		if j := strings.Index(v[1:], `"`); j >= 0 {
			return v[1 : j+1]
		}
		return strings.Trim(v, `"`)
	}
	if j := strings.IndexAny(v, "; \t\n"); j >= 0 {
		v = v[:j]
	}
	return v
}

// clip shortens s to n bytes for an error message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// partType returns the media type a part's header declares (text/plain
// when it declares none), reading only up to the blank line.
func partType(part []byte) string {
	for len(part) > 0 {
		line := part
		if j := bytes.IndexByte(part, '\n'); j >= 0 {
			line, part = part[:j], part[j+1:]
		} else {
			part = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if k := bytes.IndexByte(line, ':'); k > 0 && strings.EqualFold(string(bytes.TrimSpace(line[:k])), "content-type") {
			if t := mediaType(string(line[k+1:])); t != "" {
				return t
			}
		}
	}
	return "text/plain"
}
