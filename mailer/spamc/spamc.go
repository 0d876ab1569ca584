// Package spamc is a client of SpamAssassin's spamd: the SPAMC protocol
// (spamd/PROTOCOL in SpamAssassin's sources) over TCP, enough to ask for
// a message's score and the rules that hit it (the REPORT command).
package spamc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Client asks one spamd for reports.
type Client struct {
	// Addr is spamd's host:port.
	Addr string
	// Timeout bounds one request, connection included. Zero: 30 seconds
	// (spamd scoring a large message on a busy machine takes seconds).
	Timeout time.Duration
	// MaxSize is the largest message sent; a larger one is refused before
	// it is sent (spamc's own default is 500 KB, and spamd would score only
	// a part of it). Zero: 512 KiB.
	MaxSize int
}

// Rule is one rule that hit.
type Rule struct {
	Name        string  // e.g. HTML_IMAGE_ONLY_08
	Score       float64 // points it added (negative ones count for the message)
	Description string  // SpamAssassin's own one-line description
}

// Report is spamd's verdict on a message.
type Report struct {
	Spam      bool    // Score >= Threshold
	Score     float64 // total points
	Threshold float64 // spamd's required_score
	Rules     []Rule  // the rules that hit, in spamd's order
}

// ErrTooLarge is returned for a message over MaxSize.
var ErrTooLarge = errors.New("spamc: message too large to check")

// Error is a refusal by spamd (a response code other than 0, EX_OK).
type Error struct {
	Code    int    // sysexits code, e.g. 76 EX_PROTOCOL
	Message string // spamd's text, e.g. "EX_PROTOCOL"
}

func (e *Error) Error() string { return fmt.Sprintf("spamc: spamd answered %d %s", e.Code, e.Message) }

// Report sends msg (a whole message, headers and body, CRLF or LF line
// ends) to spamd and returns its score and the rules that hit.
func (c *Client) Report(ctx context.Context, msg []byte) (*Report, error) {
	limit := c.MaxSize
	if limit == 0 {
		limit = 512 << 10
	}
	if len(msg) > limit {
		return nil, ErrTooLarge
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("spamc: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	var req bytes.Buffer
	req.Grow(len(msg) + 64)
	fmt.Fprintf(&req, "REPORT SPAMC/1.5\r\nContent-length: %d\r\n\r\n", len(msg))
	req.Write(msg)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, fmt.Errorf("spamc: send: %w", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite() // the message is complete; older spamds read to EOF
	}
	rep, err := readResponse(bufio.NewReader(io.LimitReader(conn, 1<<20)))
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("spamc: %w", ctx.Err())
	}
	return rep, err
}

// readResponse parses "SPAMD/1.1 0 EX_OK", the headers (Spam: True ;
// 2.1 / 5.0) and the report body.
func readResponse(r *bufio.Reader) (*Report, error) {
	tp := textproto.NewReader(r)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("spamc: read response: %w", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	if !strings.HasPrefix(proto, "SPAMD/") {
		return nil, fmt.Errorf("spamc: not a spamd response: %q", line)
	}
	codeText, msg, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return nil, fmt.Errorf("spamc: bad response line %q", line)
	}
	if code != 0 {
		return nil, &Error{Code: code, Message: msg}
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("spamc: read headers: %w", err)
	}
	rep := &Report{}
	spam := h.Get("Spam")
	if spam == "" {
		return nil, errors.New("spamc: response without a Spam header")
	}
	if rep.Spam, rep.Score, rep.Threshold, err = parseSpam(spam); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("spamc: read report: %w", err)
	}
	rep.Rules = parseRules(string(body))
	return rep, nil
}

// parseSpam reads "True ; 2.1 / 5.0".
func parseSpam(v string) (spam bool, score, threshold float64, err error) {
	verdict, nums, ok := strings.Cut(v, ";")
	s, t, ok2 := strings.Cut(nums, "/")
	if !ok || !ok2 {
		return false, 0, 0, fmt.Errorf("spamc: bad Spam header %q", v)
	}
	spam = strings.EqualFold(strings.TrimSpace(verdict), "true") || strings.EqualFold(strings.TrimSpace(verdict), "yes")
	if score, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
		threshold, err = strconv.ParseFloat(strings.TrimSpace(t), 64)
	}
	if err != nil {
		return false, 0, 0, fmt.Errorf("spamc: bad Spam header %q", v)
	}
	return spam, score, threshold, nil
}

// ruleRE is one row of the report's table: " 1.1 HTML_IMAGE_ONLY_08 HTML:
// images with 400-800 bytes of words".
var ruleRE = regexp.MustCompile(`^\s*(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_]+)\s*(.*)$`)

// parseRules reads the table after the "---- ----" rule of a report;
// continuation lines (indented past the name column) extend the
// description of the row above.
func parseRules(body string) []Rule {
	var out []Rule
	table := false
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !table:
			table = strings.HasPrefix(trimmed, "----")
		case trimmed == "":
		case ruleRE.MatchString(line):
			m := ruleRE.FindStringSubmatch(line)
			score, _ := strconv.ParseFloat(m[1], 64)
			out = append(out, Rule{Name: m[2], Score: score, Description: strings.TrimSpace(m[3])})
		case len(out) > 0 && strings.HasPrefix(line, " "):
			last := &out[len(out)-1]
			last.Description = strings.TrimSpace(last.Description + " " + trimmed)
		}
	}
	return out
}
