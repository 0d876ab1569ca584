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
	rcpts := noticeRecipients(m)
	for _, rcpt := range rcpts {
		ctx := recipientContext(m.notice, rcpt)
		if ctx == "" && len(rcpts) == 1 {
			ctx = m.notice
		}
		v := Verdict{Recipient: rcpt, Diagnostic: diagnosticOf(ctx)}
		v.Status = findStatus(v.Diagnostic)
		v.Code = replyCode(v.Diagnostic)
		if v.Status == "" && v.Code == 0 {
			v.Status = findStatus(ctx)
			v.Code = replyCode(ctx)
		}
		if v.Status == "" && v.Code == 0 {
			// No code near the address: the notice's wording says whether
			// it gave up or will retry.
			v.Status = impliedStatus(m.subject + " " + m.notice)
		}
		whole := m.notice
		if len(rcpts) > 1 {
			whole = ""
		}
		v.Kind, v.Category = classifyFailure(v.Code, v.Status, ctx, "", whole, m.notice)
		rep.Recipients = append(rep.Recipients, v)
	}
}

// classifyFailure classifies a recipient a notice reports as failed: by its
// own text, then by the whole notice when that says more. near is the
// notice's text about the recipient, notice all of it. A failure notice
// never means "delivered", whatever stray 2.x.x code it quotes.
func classifyFailure(code int, status, text, near, whole, notice string) (Kind, Category) {
	kind, cat := classify(code, status, text)
	if kind == KindNotBounce {
		kind, cat = classify(code, "", text)
	}
	if (cat == CategoryOther || kind == KindNotBounce) && whole != "" {
		if c := phraseCategory(strings.ToLower(whole)); c != CategoryNone {
			kind, cat = classify(code, status, text+" "+whole)
		}
	}
	if kind == KindNotBounce {
		kind, cat = KindSoft, CategoryOther
	}
	if cat == CategoryUserUnknown && rejectedAtData(text+" "+near, notice) {
		// The server took the recipient at RCPT and refused the content:
		// "user unknown" after DATA is a filter's disguise, not a verdict
		// on the address.
		kind, cat = KindSoft, CategoryPolicyBlock
	}
	return kind, cat
}

// rejectedAtData reports whether the failure in text came in answer to DATA
// or the end of the message rather than to RCPT TO, going by the MTA's own
// wording or, failing that, by the session transcript in the notice.
func rejectedAtData(text, notice string) bool {
	lower := strings.ToLower(oneLine(text))
	if strings.Contains(lower, "rcpt to") {
		return false
	}
	if strings.Contains(lower, "end of data") || strings.Contains(lower, "after data") || strings.Contains(lower, "data command") {
		return true
	}
	// A sendmail-style transcript: ">>> DATA" then "<<< 550 ...". With
	// pipelining a RCPT TO reply can arrive after DATA was sent; "503 Need
	// RCPT" then shows it was the recipient that was refused.
	if strings.Contains(strings.ToLower(notice), "need rcpt") {
		return false
	}
	var last string
	for _, l := range strings.Split(notice, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, ">>>"):
			last = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(l, ">>>")))
		case strings.HasPrefix(l, "<<<") && replyCode(l) >= 500:
			reply := strings.ToLower(oneLine(strings.TrimPrefix(l, "<<<")))
			if len(reply) > 8 && strings.Contains(lower, reply[4:]) {
				return last == "data" || last == "."
			}
		}
	}
	return false
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
// delivery-status part, from the most to the least reliable source: Exim's
// X-Failed-Recipients header, the addresses the notice mentions, and last the
// recipients of the quoted original.
func noticeRecipients(m *msg) []string {
	if as := findAddresses(m.header.Get("X-Failed-Recipients")); len(as) > 0 {
		return as
	}
	skip := map[string]bool{m.from: true}
	h := m.original
	if h == nil {
		h = m.embedded
	}
	if h != nil {
		for _, k := range []string{"From", "Return-Path", "Sender", "Reply-To"} {
			for _, a := range findAddresses(h.Get(k)) {
				skip[a] = true
			}
		}
	}
	// The notice's addressee is our own sender and is mentioned as such,
	// unless it is also the failed recipient, as when someone mails himself.
	ours := map[string]bool{}
	for _, k := range []string{"To", "Return-Path", "Reply-To", "Sender", "Cc", "Delivered-To", "X-Original-To"} {
		for _, a := range findAddresses(m.header.Get(k)) {
			ours[a] = true
		}
	}
	if as := mentioned(m.notice, skip, ours); len(as) > 0 {
		return as
	}
	if as := mentioned(m.notice, skip, nil); len(as) > 0 {
		return as
	}
	if h != nil {
		return findAddresses(h.Get("To") + ", " + h.Get("Cc"))
	}
	return nil
}

// mentioned returns the addresses in notice that are in neither skip set
// and are not help desks or the message's own identifiers.
func mentioned(notice string, skip, ours map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(notice, "\n") {
		lower := strings.ToLower(line)
		if strings.Contains(lower, "mail from:") || strings.Contains(lower, "envelope-from") || strings.Contains(lower, "message-id") || strings.Contains(lower, "contact") {
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
func recipientContext(notice, rcpt string) string {
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
	if start > 0 && strings.TrimSpace(lines[start-1]) != "" && !isAddressLine(strings.TrimSpace(lines[start-1])) {
		// Some notices put the reason above the address (Lotus Notes).
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
		if isAddressLine(l) && !strings.Contains(strings.ToLower(l), rcpt) {
			break
		}
		if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			break
		}
	}
	return strings.Join(lines[from:end], "\n")
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
