package bounce

import (
	"bufio"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"
)

var addrRe = regexp.MustCompile(`(?:"[^"\s@]+"|[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+`)

// findAddresses returns the addresses in s, lowercase, in order, without
// repeats.
func findAddresses(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range addrRe.FindAllString(s, -1) {
		a = strings.ToLower(strings.Trim(a, ".-"))
		if !strings.Contains(a, "@") || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

var headerLineRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*:`)

// originalKeys are header fields that show a block of lines is the quoted
// original message rather than the notice.
var originalKeys = []string{"message-id", "from", "subject", "to", "date", "received", "return-path"}

// splitNotice cuts text at the quoted original message, if any: the notice
// is what comes before, and the header block found there is returned too.
func splitNotice(text string) (string, *textproto.Header) {
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		if !headerLineRe.MatchString(lines[i]) {
			continue
		}
		n, known := headerRun(lines[i:])
		if n < 3 || known < 2 {
			continue
		}
		block := strings.Join(lines[i:i+n], "\n") + "\n\n"
		h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(block)))
		if err != nil && h.Len() == 0 {
			continue
		}
		return strings.Join(lines[:i], "\n"), &h
	}
	return text, nil
}

// headerRun counts the header lines starting lines[0], with continuations,
// and how many of them are fields an original message has.
func headerRun(lines []string) (n, known int) {
	for n < len(lines) {
		l := lines[n]
		switch {
		case headerLineRe.MatchString(l):
			k, _, _ := strings.Cut(l, ":")
			for _, o := range originalKeys {
				if strings.EqualFold(k, o) {
					known++
				}
			}
		case n > 0 && l != "" && (l[0] == ' ' || l[0] == '\t'):
		default:
			return n, known
		}
		n++
	}
	return n, known
}

// bounceFromRe matches senders of delivery notices.
var bounceFromRe = regexp.MustCompile(`(?i)(mailer-daemon|mail-daemon|mailerdaemon|post_?master|mail delivery|maildelivery|mail administrator|system administrator|mailadmin|bounce|returns?@|nobody@|dsn@|daemon@)`)

// bounceSubjectRe matches subjects of delivery notices in the common
// languages.
var bounceSubjectRe = regexp.MustCompile(`(?i)(undeliver|undelivered|not delivered|delivery fail|failed delivery|delivery status|delivery notification|delivery report|delivery problem|delivery error|returned mail|return(ed)? to sender|failure notice|mail delivery|could not be delivered|couldn't be delivered|non[- ]?deliver|nondelivery|bounce|rejected|mail system error|delayed mail|warning: could not send|message delayed|unzustellbar|non remis|no entregado|non recapitato|permanent error|delivery has failed|error sending|unable to deliver|mail failure|mail error|errors? during delivery|メールエラー|エラー通知|配信エラー|不達)`)

// looksLikeBounce reports whether a message without a machine-readable
// report is still a delivery notice.
func looksLikeBounce(m *msg) bool {
	if bounceSubjectRe.MatchString(m.subject) {
		return true
	}
	if bounceFromRe.MatchString(m.header.Get("From")) {
		return true
	}
	rp := strings.TrimSpace(m.header.Get("Return-Path"))
	return rp == "<>" && bounceTextRe.MatchString(m.notice)
}

var bounceTextRe = regexp.MustCompile(`(?i)(could not be delivered|couldn't be delivered|undeliverable|delivery (to the following|has failed|failed)|permanent (fatal )?error|returned to sender|rejected|unable to deliver|was not delivered|did not reach)`)

// skipLocal are local parts of addresses that a notice mentions but never
// bounces: the notice's own authors and help desks.
var skipLocal = []string{"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "abuse", "hostmaster", "webmaster"}

// parseText handles notices without a delivery-status part: qmail, Exim,
// Postfix without DSN, the big webmail providers and the rest. It finds the
// failed addresses in the notice and the remote text near each.
func parseText(m *msg, rep *Report) {
	rcpts, guessed := noticeRecipients(m)
	if guessed && forwardedNotice(m, rep) {
		return
	}
	for _, rcpt := range rcpts {
		ctx := recipientContext(m.notice, rcpt, rcpts)
		if ctx == "" && len(rcpts) == 1 {
			ctx = m.notice
		}
		diag := diagnosticOf(ctx)
		status, code := findStatus(diag), replyCode(diag)
		if status == "" && code == 0 {
			status, code = findStatus(ctx), replyCode(ctx)
		}
		if status == "" && code == 0 && len(rcpts) == 1 {
			// The only recipient's reply may stand apart from its
			// address, under a heading of its own.
			if d := diagnosticOf(m.notice); replyCode(d) != 0 || findStatus(d) != "" {
				diag = d
				status, code = findStatus(diag), replyCode(diag)
			}
		}
		if status == "" && code == 0 {
			// No code near the address: the notice's wording says whether
			// it gave up or will retry.
			status = impliedStatus(m.subject + " " + m.notice)
		}
		whole := m.notice
		if len(rcpts) > 1 {
			whole = ""
		}
		rep.Recipients = append(rep.Recipients, verdictOf(signal{
			source: "notice", rcpt: rcpt, code: code, status: status,
			diag: diag, near: ctx, whole: whole, notice: m.notice, ours: m.ours(),
		}, true))
	}
}

// impliedStatus guesses the status class from a notice's wording.
func impliedStatus(text string) string {
	lower := strings.ToLower(text)
	for _, s := range []string{"temporar", "delayed", "will be retried", "still trying", "will keep trying", "warning:", "retry", "not yet been delivered"} {
		if strings.Contains(lower, s) {
			return "4.0.0"
		}
	}
	return ""
}

// noticeRecipients returns the failed recipients of a notice without a
// delivery-status part, from the most to the least reliable source: the
// addresses the failure text lists or mentions, then the X-Failed-Recipients
// header, and last the recipients of the quoted original. The notice's own
// addressing (To, From, Return-Path, Delivered-To: our return path and the
// reporting daemon) is never guessed to be a recipient: a notice names its
// addressee as the sender of the failed message, and that is us. Only the
// MTA's explicit list of failed addresses (or its X-Failed-Recipients
// header) can name it, as when someone mails himself.
//
// guessed is true when only the last, weakest source gave the addresses.
func noticeRecipients(m *msg) (rcpts []string, guessed bool) {
	ours := map[string]bool{m.from: true}
	for _, k := range []string{"To", "From", "Return-Path", "Delivered-To"} {
		for _, a := range findAddresses(m.header.Get(k)) {
			ours[a] = true
		}
	}
	notOurs := func(as []string) []string {
		var out []string
		for _, a := range as {
			if !ours[a] {
				out = append(out, a)
			}
		}
		return out
	}
	skip := map[string]bool{}
	h := m.originalHeader()
	if h != nil {
		for _, k := range []string{"From", "Return-Path", "Sender", "Reply-To"} {
			for _, a := range findAddresses(h.Get(k)) {
				skip[a] = true
			}
		}
	}
	// The MTA's own list of failed addresses is taken whole, even an
	// address that is also ours (someone writing to himself); a mere
	// mention skips our addresses and the original's sender.
	if as := listed(m.notice); len(as) > 0 {
		return as, false
	}
	if as := mentioned(m.notice, skip, ours); len(as) > 0 {
		return as, false
	}
	if as := findAddresses(m.header.Get("X-Failed-Recipients")); len(as) > 0 {
		return as, false
	}
	if h != nil {
		return notOurs(findAddresses(h.Get("To") + ", " + h.Get("Cc"))), true
	}
	return nil, false
}

// forwardedNotice handles a notice that names no failed address but attaches
// another delivery notice, as gateways and filtering appliances do when they
// pass on the bounce they received: the attached one is the report. It
// reports whether it found recipients there.
func forwardedNotice(m *msg, rep *Report) bool {
	if m.attached == "" || m.depth >= maxNesting {
		return false
	}
	inner := parseRaw([]byte(m.attached), m.depth+1)
	var failed []Verdict
	for _, v := range inner.Recipients {
		if v.Kind == KindHard || v.Kind == KindSoft {
			failed = append(failed, v)
		}
	}
	if len(failed) == 0 {
		return false
	}
	rep.Recipients = append(rep.Recipients, failed...)
	if inner.ReportingMTA != "" {
		rep.ReportingMTA = inner.ReportingMTA
	}
	if inner.MessageID != "" {
		rep.MessageID, rep.Original = inner.MessageID, inner.Original
	}
	return true
}

// mentioned returns the addresses in notice that are in neither skip set
// and are not help desks or the message's own identifiers.
func mentioned(notice string, skip, ours map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	lines := strings.Split(notice, "\n")
	for i, line := range lines {
		next := ""
		if i+1 < len(lines) {
			next = lines[i+1]
		}
		if notRecipientLine(strings.ToLower(line), next) {
			continue
		}
		for _, a := range findAddresses(line) {
			if skip[a] || ours[a] || seen[a] || skippedLocal(a) {
				continue
			}
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// listHeadRe matches the line with which MTAs introduce the list of failed
// addresses (Exim, sendmail, Postfix's older wording, Courier, many
// appliances).
var listHeadRe = regexp.MustCompile(`(?i)(following address(es|\(es\))?( (had|failed)|[.:]?\s*$)|following recipients? (failed|could not)|could not be delivered to the following|delivery to the following recipients? failed|undeliverable to the following)`)

// listed returns the addresses the notice lists, one per line, under its
// "the following address(es) failed" heading. Such a list is the MTA's own
// statement of the failed recipients, so it is taken whole, even an address
// that is also the original's sender (someone writing to himself).
func listed(notice string) []string {
	lines := strings.Split(notice, "\n")
	var out []string
	for i, l := range lines {
		if !listHeadRe.MatchString(l) {
			continue
		}
		skipped := 0
		rest := lines[i+1:]
		for k, item := range rest {
			t := strings.TrimSpace(item)
			if t == "" {
				if len(out) > 0 && !nextIsAddress(rest[k+1:]) {
					// Entries may be a blank line apart (qmail); the
					// list ends where no address follows.
					break
				}
				continue
			}
			if !isAddressLine(t) {
				// Before the list: the heading's own continuation
				// ("failed:"); inside it: an entry's indented detail.
				if skipped++; len(out) == 0 && skipped > 2 {
					break
				}
				continue
			}
			a := findAddresses(strings.Fields(t)[0])[0]
			if !skippedLocal(a) {
				out = append(out, a)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// nextIsAddress reports whether the first non-blank line of lines is an
// address line.
func nextIsAddress(lines []string) bool {
	for _, l := range lines {
		if t := strings.TrimSpace(l); t != "" {
			return isAddressLine(t)
		}
	}
	return false
}

// notRecipientLine reports whether a notice line names an address that is
// not a failed recipient: the envelope or header sender of the quoted
// message, its identifiers, or a help desk to contact. Japanese puts the
// verb ("連絡", "問い合わせ") after the address, often on the next line.
func notRecipientLine(lower, next string) bool {
	for _, s := range []string{"mail from:", "envelope-from", "message-id", "contact"} {
		if strings.Contains(lower, s) {
			return true
		}
	}
	for _, s := range []string{"連絡", "問い合わせ"} {
		if strings.Contains(lower, s) || strings.Contains(next, s) {
			return true
		}
	}
	t := strings.TrimSpace(lower)
	for _, k := range []string{"from:", "sender:", "reply-to:", "return-path:"} {
		if strings.HasPrefix(t, k) {
			return true
		}
	}
	return false
}

func skippedLocal(addr string) bool {
	local, _, _ := strings.Cut(addr, "@")
	for _, s := range skipLocal {
		if local == s {
			return true
		}
	}
	return false
}

// recipientContext returns the notice lines that belong to rcpt: from its
// first mention up to a blank-line gap or the next address-only line.
func recipientContext(notice, rcpt string, others []string) string {
	if rcpt == "" {
		return ""
	}
	lines := strings.Split(notice, "\n")
	start := -1
	for i, l := range lines {
		if strings.Contains(strings.ToLower(l), rcpt) {
			if isAddressLine(strings.TrimSpace(l)) {
				start = i
				break
			}
			if start < 0 {
				start = i
			}
		}
	}
	if start < 0 {
		return ""
	}
	from := start
	if prev := strings.TrimSpace(lines[max(start-1, 0)]); start > 0 && prev != "" && (len(findAddresses(prev)) == 0 || strings.HasPrefix(prev, "<<<")) {
		// Some notices put the reason above the address (Lotus Notes,
		// and sendmail's transcript: the server's "<<<" reply, then its
		// own summary line); a line naming another address belongs to
		// that one.
		from = start - 1
	}
	end := start + 1
	blank := 0
	for ; end < len(lines) && end < start+15; end++ {
		l := strings.TrimSpace(lines[end])
		if l == "" {
			blank++
			if blank >= 2 {
				break
			}
			continue
		}
		blank = 0
		if lower := strings.ToLower(l); !strings.Contains(lower, rcpt) && (isAddressLine(l) || mentionsOther(lower, rcpt, others)) {
			break
		}
		if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") || strings.HasPrefix(strings.ToLower(l), "while talking to") {
			// A new section, or sendmail's transcript of another session.
			break
		}
	}
	return strings.Join(lines[from:end], "\n")
}

// mentionsOther reports whether a lowercase line names another of the
// failed recipients: it belongs to that one.
func mentionsOther(lower, rcpt string, others []string) bool {
	for _, o := range others {
		if o != rcpt && strings.Contains(lower, o) {
			return true
		}
	}
	return false
}

// isAddressLine reports whether l is an address alone, as notices list the
// failed recipients ("<a@b>:", "a@b", "a@b on <date>").
func isAddressLine(l string) bool {
	f := strings.Fields(l)
	if len(f) == 0 {
		return false
	}
	return strings.Contains(f[0], "@") && len(findAddresses(f[0])) == 1
}

// diagnosticOf picks the remote server's words out of a recipient's context:
// from the first reply code on, else the lines after the address.
func diagnosticOf(ctx string) string {
	one := oneLine(ctx)
	if loc := codeRe.FindStringIndex(one); loc != nil {
		return strings.TrimSpace(one[loc[0]:])
	}
	if loc := statusRe.FindStringIndex(one); loc != nil {
		return strings.TrimSpace(one[loc[0]:])
	}
	return one
}
