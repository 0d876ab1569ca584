package models

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits every way in (dashboard forms, the JSON API, imports) shares:
// the store methods check them, so no caller can skip them.
const (
	// MaxNameLength is the longest name of a subscriber, template or
	// campaign, in characters.
	MaxNameLength = 200
	// MaxAttributesBytes is the largest subscriber attribute object, as
	// JSON. Attributes are read by every rendering of every message.
	MaxAttributesBytes = 64 << 10
	// MaxSubjectLength is the longest subject line (template source), in
	// characters.
	MaxSubjectLength = 1000
	// MaxTemplateBytes is the largest HTML or text body of a template.
	MaxTemplateBytes = 1 << 20
)

// invalid returns errs as a *ValidationError, or nil when it is empty.
func invalid(errs map[string]string) error {
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: errs}
}

// Validate normalises the subscriber's address and checks its name and
// attributes; it returns a field→message map, empty when valid.
func (s *Subscriber) Validate() map[string]string {
	errs := map[string]string{}
	if e, err := NormalizeEmail(s.Email); err != nil {
		errs["email"] = err.Error()
	} else {
		s.Email = e
	}
	s.Name = strings.TrimSpace(s.Name)
	if utf8.RuneCountInString(s.Name) > MaxNameLength {
		errs["name"] = fmt.Sprintf("Keep the name under %d characters.", MaxNameLength)
	}
	if len(s.Attributes) > 0 {
		b, err := s.Attributes.Value()
		if err != nil {
			errs["attributes"] = "The attributes must be a JSON object."
		} else if n := len(fmt.Sprint(b)); n > MaxAttributesBytes {
			errs["attributes"] = fmt.Sprintf("The attributes are %d KB as JSON; the limit is %d KB.", n>>10, MaxAttributesBytes>>10)
		}
	}
	return errs
}

// checkTemplateSizes adds the length limits to a template's errors.
func checkTemplateSizes(t *Template, errs map[string]string) {
	if utf8.RuneCountInString(t.Name) > MaxNameLength {
		errs["name"] = fmt.Sprintf("Keep the name under %d characters.", MaxNameLength)
	}
	if utf8.RuneCountInString(t.Subject) > MaxSubjectLength {
		errs["subject"] = fmt.Sprintf("Keep the subject under %d characters.", MaxSubjectLength)
	}
	for field, body := range map[string]string{"html": t.HTML, "text": t.Text} {
		if len(body) > MaxTemplateBytes {
			errs[field] = fmt.Sprintf("The %s body is %d KB; the limit is %d KB.", field, len(body)>>10, MaxTemplateBytes>>10)
		}
	}
}

// validLawfulBasis checks an evidence's lawful basis, which goes into the
// hash-chained consent ledger: empty (none declared) or a known one.
func validLawfulBasis(ev Evidence) error {
	if ev.LawfulBasis != "" && !ValidLawfulBasis(ev.LawfulBasis) {
		return invalid(map[string]string{"lawful_basis": fmt.Sprintf("The lawful basis must be one of %s.", strings.Join(LawfulBases, ", "))})
	}
	return nil
}
