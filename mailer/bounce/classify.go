package bounce

import (
	"regexp"
	"strconv"
	"strings"
)

// ClassifyReply classifies a synchronous SMTP reply from a remote server.
// enhanced may be empty; when it is, the code is looked for at the start of
// text, where most servers put it. The stage is read from the text when it
// says; ClassifyReplyAt takes it from the caller.
func ClassifyReply(code int, enhanced string, text string) Verdict {
	return ClassifyReplyAt(StageUnknown, code, enhanced, text)
}

// ClassifyReplyAt classifies a synchronous SMTP reply given to the command
// of stage (StageRcpt for a reply to RCPT TO, and so on; StageUnknown when
// the caller does not know) by the same precedence table as reports.
func ClassifyReplyAt(stage Stage, code int, enhanced string, text string) Verdict {
	text = oneLine(text)
	if enhanced == "" {
		enhanced = findStatus(text)
	} else {
		enhanced = normStatus(enhanced)
	}
	return verdictOf(signal{source: "smtp reply", code: code, status: enhanced, diag: text, stage: stage}, false)
}

// verdictOf gathers the evidence of a signal and decides. failure says the
// signal is a failure notice, which never means "delivered" whatever stray
// 2.x.x code it quotes.
func verdictOf(s signal, failure bool) Verdict {
	if failure && statusClass(s.status, s.code) == 2 {
		s.status = ""
		if s.code < 400 {
			s.code = 0
		}
	}
	e := gather(s)
	v := Verdict{Recipient: s.rcpt, Code: e.Code, Status: e.Status, Diagnostic: e.Diagnostic, Evidence: e}
	v.Kind, v.Category, v.Rule, v.Reason = decide(e)
	if failure && v.Kind == KindNotBounce {
		v.Kind, v.Category, v.Rule = KindSoft, CategoryOther, "R12"
		v.Reason = "a failure notice with nothing about the failure: " + v.Reason
	}
	return v
}

// statusClass returns 2, 4 or 5 from the enhanced status, falling back to
// the reply code; 0 when neither says.
func statusClass(status string, code int) int {
	if status != "" {
		switch status[0] {
		case '2':
			return 2
		case '4':
			return 4
		case '5':
			return 5
		}
	}
	switch {
	case code >= 200 && code < 400:
		return 2
	case code >= 400 && code < 500:
		return 4
	case code >= 500 && code < 600:
		return 5
	}
	return 0
}

// statusCategory maps an enhanced status code to a category. specific is
// false for codes servers use as a catch-all, so the text decides.
func statusCategory(status string) (cat Category, specific bool) {
	if status == "" {
		return CategoryNone, false
	}
	sub, det, ok := splitStatus(status)
	if !ok {
		return CategoryNone, false
	}
	switch sub {
	case 1:
		switch det {
		case 1, 3, 6:
			return CategoryUserUnknown, true
		case 2, 10:
			return CategoryDomainNotFound, true
		case 0:
			return CategoryUserUnknown, false
		case 7, 8:
			// Bad sender address or domain: ours, not the recipient's.
			return CategoryPolicyBlock, true
		}
	case 2:
		switch det {
		case 2:
			return CategoryMailboxFull, true
		case 3:
			return CategoryMessageTooBig, true
		case 1:
			// "Mailbox disabled, not accepting messages": the mailbox
			// exists. Servers pair it with any words, "User Unknown"
			// included, when a filter refuses us; the code is the verdict.
			// As a temporary failure it is used loosely (busy, try later).
			return CategoryMailboxDisabled, status[0] == '5'
		case 0:
			return CategoryOther, false
		}
	case 3:
		switch det {
		case 1:
			return CategoryMailboxFull, true
		case 4:
			return CategoryMessageTooBig, true
		}
		return CategoryOther, false
	case 4:
		switch det {
		case 7:
			return CategoryExpired, true
		case 4:
			return CategoryDomainNotFound, false
		case 1, 2, 3, 5, 6:
			return CategoryNetwork, false
		}
		return CategoryNetwork, false
	case 5:
		return CategoryOther, false
	case 6:
		return CategoryPolicyBlock, false
	case 7:
		switch det {
		case 28:
			return CategoryRateLimited, true
		case 13:
			// "User account disabled" (RFC 3463 as updated): like X.2.1,
			// the account exists.
			return CategoryMailboxDisabled, true
		case 23, 24, 25, 26:
			return CategoryPolicyBlock, true
		}
		return CategoryPolicyBlock, false
	}
	return CategoryNone, false
}

// codeCategory is the last resort when neither status nor text say more.
func codeCategory(code int) Category {
	switch code {
	case 421:
		return CategoryRateLimited
	case 552:
		return CategoryMailboxFull
	case 550, 551, 553:
		return CategoryOther
	case 554:
		return CategoryPolicyBlock
	}
	return CategoryNone
}

var statusRe = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// findStatus returns the first enhanced status code in text.
func findStatus(text string) string {
	m := statusRe.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2] + "." + m[3]
}

// normStatus trims decoration such as a trailing comment from a status
// field; it returns "" when the value is not a status code.
func normStatus(s string) string {
	return findStatus(s)
}

// splitStatus returns the subject and detail of "c.s.d".
func splitStatus(status string) (sub, det int, ok bool) {
	parts := strings.Split(status, ".")
	if len(parts) != 3 {
		return 0, 0, false
	}
	s, err1 := strconv.Atoi(parts[1])
	d, err2 := strconv.Atoi(parts[2])
	return s, d, err1 == nil && err2 == nil
}

// oneLine unfolds multi-line diagnostic text and squeezes its whitespace.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
