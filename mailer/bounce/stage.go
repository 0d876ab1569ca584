package bounce

import (
	"regexp"
	"strings"
)

// The SMTP stage matters because the same words mean different things at
// different stages: "user unknown" in answer to RCPT TO is a verdict on the
// address, in answer to DATA it is a content filter's disguise, and any
// refusal of MAIL FROM is about our sender, not the recipient.

// stageRes match the MTAs' own account of the refused command: Postfix
// "(in reply to RCPT TO command)", Exim "SMTP error from remote mail server
// after RCPT TO:<…>", "after end of data", "in response to", qmail's
// "does not like recipient" and "failed after I sent the message", and the
// restriction names Postfix puts in its replies ("Recipient address
// rejected" is a RCPT TO restriction, "Sender address rejected" a MAIL FROM
// one, "Client host rejected" one on the connection).
var stageRes = []struct {
	gate string // a word without which re cannot match: spares most texts the expression
	re   *regexp.Regexp
}{
	{"", regexp.MustCompile(`(?:in reply to|in response to|after|after pipelined|while sending|for)\s+(?:the\s+)?(rcpt to|rcpt|mail from|end of data|data|text command)\b`)},
	{"after", regexp.MustCompile(`after\s+(?:the\s+)?(initial connection|connection|greeting|banner|helo|ehlo|starttls)\b`)},
	{"does not like", regexp.MustCompile(`does not like (recipient|sender)`)},
	{"failed", regexp.MustCompile(`(failed after i sent the message|failed on data command)`)},
	{"rejected", regexp.MustCompile(`(recipient address rejected|sender address rejected|client host rejected|helo command rejected|address rejected)`)},
	{"[", regexp.MustCompile(`\[(rcpt_to|mail_from|data)\]`)},
	{"smtp", regexp.MustCompile(`\bsmtp[: ]+(rcpt|mail|data)\b`)},
}

// stageWords gate the first of stageRes: the commands it names.
var stageWords = []string{"rcpt", "mail from", "data", "text command"}

// matchStage returns the first (leftmost) of the stageRes matches in lower:
// the stage words and the whole match.
func matchStage(lower string) (group, whole string) {
	best := -1
	for i, sr := range stageRes {
		if i == 0 && !anyOf(lower, stageWords...) || i > 0 && !strings.Contains(lower, sr.gate) {
			continue
		}
		loc := sr.re.FindStringSubmatchIndex(lower)
		if loc == nil || (best >= 0 && loc[0] >= best) {
			continue
		}
		best, whole, group = loc[0], lower[loc[0]:loc[1]], lower[loc[2]:loc[3]]
	}
	return group, whole
}

// failedStage tells which stage the failure in text answered, going by the
// MTA's own wording, then by a session transcript in the notice (">>> DATA"
// then "<<< 550 …") or a labelled "SMTP command" line. hint is the words
// that showed it.
func failedStage(lower, notice string) (Stage, string) {
	if g, whole := matchStage(lower); g != "" {
		return stageOf(g), whole
	}
	ln := strings.ToLower(notice)
	// With pipelining a RCPT TO reply can arrive after DATA was sent;
	// "503 Need RCPT" then shows it was the recipient that was refused.
	for _, p := range []string{"need rcpt", "no valid recipients"} {
		if strings.Contains(ln, p) {
			return StageRcpt, p
		}
	}
	if strings.Contains(lower, "rcpt to") {
		return StageRcpt, "rcpt to"
	}
	if s, hint := transcriptStage(lower, notice); s != StageUnknown {
		return s, hint
	}
	return labelledStage(notice)
}

// stageOf maps an SMTP verb or an MTA's phrase for it to a stage.
func stageOf(s string) Stage {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(s, "rcpt"), strings.Contains(s, "recipient"), s == "address rejected":
		return StageRcpt
	case strings.HasPrefix(s, "mail"), strings.Contains(s, "sender"):
		return StageMail
	case s == "." || strings.HasPrefix(s, "data") || strings.Contains(s, "end of data") || s == "text command" ||
		strings.Contains(s, "sent the message") || strings.Contains(s, "data command"):
		// "TEXT" is 1&1's name for the message body.
		return StageData
	case strings.Contains(s, "connection"), s == "greeting", s == "banner", strings.HasPrefix(s, "helo"),
		strings.HasPrefix(s, "ehlo"), s == "starttls", strings.Contains(s, "client host"):
		return StageConnect
	}
	return StageUnknown
}

// transcriptStage reads a sendmail-style transcript: the last ">>>" line
// before the "<<<" reply that carries the failure in lower.
func transcriptStage(lower, notice string) (Stage, string) {
	var last string
	for _, l := range strings.Split(notice, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, ">>>"):
			last = strings.TrimSpace(strings.TrimPrefix(l, ">>>"))
		case strings.HasPrefix(l, "<<<") && replyCode(l) >= 400:
			reply := strings.ToLower(oneLine(strings.TrimPrefix(l, "<<<")))
			if len(reply) > 8 && strings.Contains(lower, reply[4:]) {
				if s := stageOf(last); s != StageUnknown {
					return s, ">>> " + last
				}
				return StageUnknown, ""
			}
		}
	}
	return StageUnknown, ""
}

// labelledStage reads notices that name the command under a heading, as
// some appliances do ("SMTP command" on one line, "DATA" on the next, or
// "SMTP command: RCPT TO").
func labelledStage(notice string) (Stage, string) {
	lines := strings.Split(notice, "\n")
	for i, l := range lines {
		lower := strings.ToLower(strings.TrimSpace(l))
		k := strings.Index(lower, "smtp command")
		if k < 0 {
			continue
		}
		rest := strings.Trim(lower[k+len("smtp command"):], " :-=")
		if rest == "" && i+1 < len(lines) {
			rest = strings.TrimSpace(lines[i+1])
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if s := stageOf(f[0]); s != StageUnknown {
				return s, "smtp command " + f[0]
			}
		}
	}
	return StageUnknown, ""
}
