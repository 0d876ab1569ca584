package bounce

import "strings"

// fml (fml.org), a mailing-list manager common in Japan, answers a post it
// will not distribute with a notice of its own: no DSN, no failure status,
// the list's address in angle brackets in the text ("You are not a member of
// this mailing list <list@example.org>", "Duplicated Message-ID in
// <list@example.org>"). For us the list address did not take the message,
// though it exists: a soft failure.

// isFML reports whether m is such a notice: sent by a list's "-admin"
// address, with fml's X-MLServer field and Message-ID form. A post the list
// distributes carries the same X-MLServer field but comes from the poster.
func isFML(m *msg) bool {
	h := m.header
	if !strings.Contains(strings.ToLower(h.Get("X-MLServer")), "fml") {
		return false
	}
	local, _, _ := strings.Cut(m.from, "@")
	return strings.HasSuffix(local, "-admin") && strings.Contains(h.Get("Message-Id"), ".FML")
}

// parseFML reports each bracketed address of the notice, above the quoted
// post, as a soft failure, with the notice's line about it as the
// diagnostic.
func parseFML(m *msg, rep *Report) {
	seen := map[string]bool{}
	for _, line := range strings.Split(m.notice, "\n") {
		if strings.Contains(strings.ToLower(line), "original mail as follows") {
			break // fml quotes the post, indented, below this line
		}
		open, end := strings.Index(line, "<"), strings.LastIndex(line, ">")
		if open < 0 || end < open {
			continue
		}
		as := findAddresses(line[open:end])
		if len(as) != 1 || seen[as[0]] {
			continue
		}
		seen[as[0]] = true
		diag := oneLine(line)
		// "Not a member", loops: the list refused our post; the list
		// address exists. The words only name the category.
		cat := phraseCategory(strings.ToLower(diag))
		if cat == CategoryNone || cat == CategoryUserUnknown || cat == CategoryDomainNotFound || cat == categoryFilter {
			cat = CategoryPolicyBlock
		}
		e := Evidence{Source: "fml", Concerns: ConcernSender, ConcernHint: "a mailing list (fml) refused our post", Diagnostic: diag, Phrase: cat}
		rep.Recipients = append(rep.Recipients, Verdict{Recipient: as[0], Kind: KindSoft, Category: cat, Diagnostic: diag,
			Rule: "R4", Reason: "the reason concerns our side, not the recipient: " + e.ConcernHint, Evidence: e})
	}
}
