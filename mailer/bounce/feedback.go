package bounce

import (
	"regexp"
	"strings"
)

// parseFeedback reads an RFC 5965 (ARF) feedback report: one complaint per
// reported recipient.
func parseFeedback(m *msg, rep *Report) {
	var rcpts []string
	for _, body := range m.feedback {
		for _, f := range readFields(body) {
			if rep.FeedbackType == "" {
				rep.FeedbackType = strings.ToLower(strings.TrimSpace(f["feedback-type"]))
			}
			if rep.ReportingMTA == "" {
				rep.ReportingMTA = afterType(f["reporting-mta"])
			}
			for _, k := range []string{"original-rcpt-to", "removal-recipient"} {
				rcpts = append(rcpts, findAddresses(f[k])...)
			}
		}
	}
	// Several Original-Rcpt-To fields are allowed; readFields keeps the
	// first of a key, so look at every line for the rest.
	for _, body := range m.feedback {
		for _, line := range strings.Split(body, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.EqualFold(strings.TrimSpace(k), "original-rcpt-to") {
				rcpts = append(rcpts, findAddresses(v)...)
			}
		}
	}
	if len(rcpts) == 0 {
		rcpts = originalRecipients(m)
	}
	addComplaints(rep, rcpts)
}

// originalRecipients returns the To addresses of the quoted original.
func originalRecipients(m *msg) []string {
	h := m.original
	if h == nil {
		h = m.embedded
	}
	if h == nil {
		return nil
	}
	return findAddresses(h.Get("To"))
}

func addComplaints(rep *Report, rcpts []string) {
	seen := map[string]bool{}
	for _, r := range rcpts {
		if seen[r] {
			continue
		}
		seen[r] = true
		rep.Recipients = append(rep.Recipients, Verdict{
			Kind:       KindComplaint,
			Recipient:  r,
			Diagnostic: rep.FeedbackType,
			Reason:     "complaint report (feedback type " + rep.FeedbackType + ")",
		})
	}
}

// feedbackSubjectRe matches the subjects of complaint reports sent without
// the ARF structure (older feedback loops, forwarded abuse reports).
var feedbackSubjectRe = regexp.MustCompile(`(?i)(complaint|abuse report|spam report|feedback loop|fbl report|email feedback report)`)

// isFeedbackText reports whether the message is a complaint report that
// does not use ARF.
func isFeedbackText(m *msg) bool {
	if !feedbackSubjectRe.MatchString(m.subject) {
		return false
	}
	return m.original != nil || m.embedded != nil
}

// parseFeedbackText attributes a non-ARF complaint to the original's
// recipients.
func parseFeedbackText(m *msg, rep *Report) {
	rep.FeedbackType = "abuse"
	addComplaints(rep, originalRecipients(m))
}

// autoReplySubjectRe matches the subjects of vacation and out-of-office
// answers in the common languages.
var autoReplySubjectRe = regexp.MustCompile(`(?i)(out of (the )?office|automatic reply|auto(matic)?[- ]?reply|autoreply|auto-response|autoresponse|^auto:|vacation|away from|on leave|abwesenheit|absence|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica|fuori sede|afwezig)`)

// isAutoReply reports whether the message is an automatic answer from a
// person's mailbox (RFC 3834) rather than a delivery notice.
func isAutoReply(m *msg) bool {
	h := m.header
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))), "auto-replied") && !looksLikeBounce(m) {
		return true
	}
	if h.Get("X-Autoreply") != "" || h.Get("X-Autorespond") != "" || h.Get("X-Autoresponder") != "" {
		return true
	}
	if strings.EqualFold(strings.TrimSpace(h.Get("Precedence")), "auto_reply") {
		return true
	}
	return autoReplySubjectRe.MatchString(m.subject) && !looksLikeBounce(m)
}

// parseAutoReply records the answering mailbox as the recipient: it is the
// address we mailed.
func parseAutoReply(m *msg, rep *Report) {
	if m.from == "" {
		return
	}
	rep.Recipients = append(rep.Recipients, Verdict{
		Kind:       KindAutoReply,
		Recipient:  m.from,
		Diagnostic: oneLine(m.subject),
		Reason:     "automatic reply from the recipient's mailbox (vacation, out of office): the address works",
	})
}
