package bounce

import (
	"regexp"
	"strconv"
	"strings"
)

// fields is one block of an RFC 3464 delivery-status body, keys lowercase.
type fields map[string]string

// readFields splits a delivery-status body into blocks of fields. A new
// block starts at a blank line, and also at a second recipient field, because
// some MTAs forget the blank line between recipients.
func readFields(text string) []fields {
	var blocks []fields
	cur := fields{}
	var lastKey string
	push := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
		}
		cur = fields{}
		lastKey = ""
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			push()
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && lastKey != "" {
			cur[lastKey] += " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(k, " \t") {
			continue
		}
		k = strings.ToLower(k)
		if startsRecipient(cur, k) {
			push()
		}
		if _, dup := cur[k]; !dup {
			cur[k] = strings.TrimSpace(v)
		}
		lastKey = k
	}
	push()
	return blocks
}

// startsRecipient reports whether field k opens a new recipient block
// rather than continuing cur. Original-Recipient may come before or after
// Final-Recipient, so it only opens a block when cur already looks complete.
func startsRecipient(cur fields, k string) bool {
	_, hasFinal := cur["final-recipient"]
	_, hasOrig := cur["original-recipient"]
	_, hasAction := cur["action"]
	_, hasStatus := cur["status"]
	switch k {
	case "final-recipient":
		return hasFinal
	case "original-recipient":
		return hasOrig || (hasFinal && (hasAction || hasStatus))
	}
	return false
}

// hasInlineStatus reports whether a text part carries delivery-status fields,
// as some MTAs write them without the message/delivery-status part.
func hasInlineStatus(m *msg) bool {
	for _, t := range m.texts {
		lower := strings.ToLower(t)
		if strings.Contains(lower, "\nfinal-recipient:") && strings.Contains(lower, "\nstatus:") {
			return true
		}
	}
	return false
}

// parseDSN reads RFC 3464 recipient blocks into verdicts.
func parseDSN(m *msg, rep *Report) {
	bodies := m.status
	if len(bodies) == 0 {
		bodies = m.texts
	}
	type block struct {
		f    fields
		rcpt string
	}
	var blocks []block
	seen := map[string]bool{}
	for _, body := range bodies {
		for _, f := range readFields(body) {
			if mta := f["reporting-mta"]; mta != "" && rep.ReportingMTA == "" {
				rep.ReportingMTA = afterType(mta)
			}
			rcpt := recipientField(f)
			if rcpt == "" || seen[rcpt] {
				continue
			}
			seen[rcpt] = true
			blocks = append(blocks, block{f, rcpt})
		}
	}
	all := make([]string, len(blocks))
	for i, b := range blocks {
		all[i] = b.rcpt
	}
	for _, b := range blocks {
		rep.Recipients = append(rep.Recipients, dsnVerdict(m, b.f, b.rcpt, all, rep.ReportingMTA))
	}
}

// recipientField returns the recipient of a block: Final-Recipient, or
// Original-Recipient when the final one is missing or not an address.
func recipientField(f fields) string {
	for _, k := range []string{"final-recipient", "original-recipient", "x-actual-recipient"} {
		if as := findAddresses(afterType(f[k])); len(as) > 0 {
			return as[0]
		}
	}
	return ""
}

// afterType drops the address-type or diagnostic-type prefix ("rfc822;",
// "smtp;", "dns;").
func afterType(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, " <@") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

// dsnVerdict classifies one recipient block, using the human-readable text
// around the recipient when the block itself says little.
func dsnVerdict(m *msg, f fields, rcpt string, all []string, reportingMTA string) Verdict {
	single := len(all) == 1
	diag := oneLine(afterType(f["diagnostic-code"]))
	status := normStatus(f["status"])
	action := strings.ToLower(strings.Fields(f["action"] + " x")[0])
	switch action {
	case "delivered", "relayed", "expanded", "deliverable":
		return Verdict{Kind: KindNotBounce, Recipient: rcpt, Status: status, Diagnostic: diag, Rule: "R1",
			Reason: "the report says the message was " + action}
	}

	ctx := recipientContext(m.notice, rcpt, all)
	if ctx == "" && single {
		ctx = m.notice
	}
	if diag == "" {
		diag = diagnosticOf(ctx)
		if single && replyCode(diag) == 0 && findStatus(diag) == "" {
			// The only recipient's reply may stand apart from its
			// address, in a transcript below it.
			if d := diagnosticOf(m.notice); replyCode(d) != 0 {
				diag = d
			}
		}
	}
	code := replyCode(diag)
	if sub := findStatus(diag); sub != "" && (status == "" || sub[0] == status[0]) {
		// The remote server's own code is more precise than the one the
		// reporting MTA put in Status, which is often generic or a guess.
		status = sub
	}
	if status == "" && code == 0 {
		status = findStatus(ctx)
	}
	if action == "delayed" && (status == "" || status[0] != '4') {
		status = "4" + strings.TrimLeft(status, "2345")
		if status == "4" {
			status = "4.0.0"
		}
	}
	whole := ""
	if single {
		whole = m.notice
	}
	return verdictOf(signal{
		source: "dsn", rcpt: rcpt, code: code, status: status, action: action,
		diag: diag, near: ctx, whole: whole, notice: m.notice, ours: m.ours(),
		mtaCategory:  powerMTACategories[strings.ToLower(strings.TrimSpace(f["x-powermta-bouncecategory"]))],
		reportingMTA: reportingMTA, remoteMTA: afterType(f["remote-mta"]),
	}, true)
}

// powerMTACategories maps PowerMTA's X-PowerMTA-BounceCategory values to
// ours.
var powerMTACategories = map[string]Category{
	"bad-mailbox":      CategoryUserUnknown,
	"bad-domain":       CategoryDomainNotFound,
	"inactive-mailbox": CategoryMailboxDisabled,
	"quota-issues":     CategoryMailboxFull,
	"message-expired":  CategoryExpired,
	"spam-related":     CategoryPolicyBlock,
	"policy-related":   CategoryPolicyBlock,
	"content-related":  CategoryPolicyBlock,
}

var codeRe = regexp.MustCompile(`(?:^|[\s;:(<\['"])([45][0-9][0-9])(?:[ -]|[:,][ :]|$)`)

// replyCode returns the first failure reply code (4xx or 5xx) in text, or 0;
// a 2xx in a failure notice is a byte count or a quoted earlier reply.
// ReplyCodes finds the SMTP reply code (4xx, 5xx) and the enhanced status
// code in free text, such as an ESP's bounce reason; zero values when
// there are none.
func ReplyCodes(text string) (code int, status string) {
	return replyCode(text), findStatus(text)
}

func replyCode(text string) int {
	m := codeRe.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
