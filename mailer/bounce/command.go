package bounce

import (
	"regexp"
	"strings"
)

// command is the SMTP command a remote server refused, as far as a notice
// tells. It matters because the same words mean different things at
// different stages: "user unknown" in answer to RCPT TO is a verdict on the
// address, in answer to DATA it is a content filter's disguise, and any
// refusal of MAIL FROM is about our sender, not the recipient.
type command string

const (
	cmdUnknown command = ""
	cmdMail    command = "MAIL"
	cmdRcpt    command = "RCPT"
	cmdData    command = "DATA"
)

// commandRe matches the MTAs' own account of the refused command: Postfix
// "(in reply to RCPT TO command)", Exim "SMTP error from remote mail server
// after RCPT TO:<…>", "after end of data", qmail-style "in response to".
var commandRe = regexp.MustCompile(`(?:in reply to|in response to|after|after pipelined|while sending|for)\s+(?:the\s+)?(rcpt to|rcpt|mail from|end of data|data|text command)\b`)

// failedCommand tells which command the failure in text answered, going by
// the MTA's own wording, then by a session transcript in the notice
// (">>> DATA" then "<<< 550 …") or a labelled "SMTP command" line.
func failedCommand(text, notice string) command {
	lower := strings.ToLower(oneLine(text))
	if m := commandRe.FindStringSubmatch(lower); m != nil {
		return commandOf(m[1])
	}
	switch {
	case strings.Contains(lower, "data command"):
		return cmdData
	case strings.Contains(lower, "[mail_from]"): // Yahoo tags the command
		return cmdMail
	case strings.Contains(lower, "rcpt to"), strings.Contains(lower, "[rcpt_to]"):
		return cmdRcpt
	}
	ln := strings.ToLower(notice)
	// With pipelining a RCPT TO reply can arrive after DATA was sent;
	// "503 Need RCPT" then shows it was the recipient that was refused.
	if strings.Contains(ln, "need rcpt") || strings.Contains(ln, "no valid recipients") {
		return cmdRcpt
	}
	if c := transcriptCommand(lower, notice); c != cmdUnknown {
		return c
	}
	return labelledCommand(notice)
}

// commandOf maps an SMTP verb or an MTA's phrase for it to a command.
func commandOf(s string) command {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(s, "rcpt"):
		return cmdRcpt
	case strings.HasPrefix(s, "mail"):
		return cmdMail
	case s == "." || strings.HasPrefix(s, "data") || strings.Contains(s, "end of data"), s == "text command":
		// "TEXT" is 1&1's name for the message body.
		return cmdData
	}
	return cmdUnknown
}

// transcriptCommand reads a sendmail-style transcript: the last ">>>" line
// before the "<<<" reply that carries the failure in lower.
func transcriptCommand(lower, notice string) command {
	var last string
	for _, l := range strings.Split(notice, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, ">>>"):
			last = strings.TrimSpace(strings.TrimPrefix(l, ">>>"))
		case strings.HasPrefix(l, "<<<") && replyCode(l) >= 400:
			reply := strings.ToLower(oneLine(strings.TrimPrefix(l, "<<<")))
			if len(reply) > 8 && strings.Contains(lower, reply[4:]) {
				return commandOf(last)
			}
		}
	}
	return cmdUnknown
}

// labelledCommand reads notices that name the command under a heading, as
// some appliances do ("SMTP command" on one line, "DATA" on the next, or
// "SMTP command: RCPT TO").
func labelledCommand(notice string) command {
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
			if c := commandOf(f[0]); c != cmdUnknown {
				return c
			}
		}
	}
	return cmdUnknown
}

// refine adjusts a verdict by the command the server refused:
//   - a refusal of MAIL FROM is about our sender, whatever its words;
//   - "user unknown" in answer to DATA comes after the server accepted the
//     recipient, a content filter's disguise (Japanese mobile carriers do
//     this), unless the reply carries the server's own address status
//     (X.1.x): that is a pipelined RCPT TO refusal logged against DATA;
//   - "User Unknown" in answer to RCPT TO refuses the address, even under
//     X.2.1 ("mailbox disabled"), which sendmail-style filters put on
//     every refusal; without the command, X.2.1 decides.
//
// With the command unknown, "user unknown" stays hard: servers check
// recipients at RCPT TO, and a filter that answers DATA with these words is
// the exception, which notices that show the stage let us catch.
//
// text is all the notice says about the recipient.
func refine(kind Kind, cat Category, text string, cmd command) (Kind, Category) {
	switch {
	case kind == KindHard && cmd == cmdMail:
		return KindSoft, CategoryPolicyBlock
	case kind == KindHard && cmd == cmdData:
		if c, specific := statusCategory(findStatus(text)); specific && kindOf(5, c) == KindHard {
			return kind, cat
		}
		return KindSoft, CategoryPolicyBlock
	case cat == CategoryMailboxDisabled && cmd == cmdRcpt && saysUserUnknown(text):
		return KindHard, CategoryUserUnknown
	}
	return kind, cat
}

// saysUserUnknown reports whether text calls the recipient unknown, as
// opposed to disabled or inactive.
func saysUserUnknown(text string) bool {
	lower := strings.ToLower(text)
	if strings.Contains(lower, "disabled") || strings.Contains(lower, "inactive") {
		return false
	}
	return phraseCategory(lower) == CategoryUserUnknown
}

// bareRejections are whole replies, once codes and the address are taken
// out, by which a server refuses a recipient and gives no reason.
var bareRejections = map[string]bool{
	"recipient address rejected": true,
	"recipient rejected":         true,
	"address rejected":           true,
	"rejected":                   true,
}

var codesRe = regexp.MustCompile(`\b[245](?:\.\d{1,3}\.\d{1,3}|\d\d)\b`)

// bareRejection reports whether text refuses the recipient rcpt itself and
// says nothing more: "550 <rcpt>: Recipient address rejected.", "542 rcpt
// Rejected". A server that refuses an address without a reason does so
// because it has no such mailbox; policy refusals say which policy. A bare
// "550 Rejected" that names no recipient could be about anything.
func bareRejection(text, rcpt string) bool {
	lower := strings.ToLower(oneLine(diagnosticOf(text)))
	if rcpt == "" || (!strings.Contains(lower, rcpt) && !strings.Contains(lower, "recipient")) {
		return false
	}
	rest := strings.ReplaceAll(lower, rcpt, " ")
	rest = codesRe.ReplaceAllString(rest, " ")
	rest = strings.Join(strings.FieldsFunc(rest, func(r rune) bool {
		return !(r >= 'a' && r <= 'z')
	}), " ")
	return bareRejections[rest]
}
