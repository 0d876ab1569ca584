package models

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// InvalidEmailError says why an address was refused, in words for the person
// who typed it.
type InvalidEmailError struct {
	Input  string
	Reason string
}

func (e *InvalidEmailError) Error() string {
	return fmt.Sprintf("%q is not a valid email address: %s", e.Input, e.Reason)
}

var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(true))

// NormalizeEmail trims the address, lower-cases its domain, turns an
// internationalised domain into punycode and checks the result's shape. The
// local part keeps its case (RFC 5321 lets servers honour it); uniqueness is
// case-insensitive in the database.
func NormalizeEmail(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", &InvalidEmailError{raw, "it is empty"}
	}
	if !utf8.ValidString(s) {
		return "", &InvalidEmailError{raw, "it is not valid UTF-8 text"}
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", &InvalidEmailError{raw, "it has no @"}
	}
	local, domain := s[:at], s[at+1:]
	switch {
	case local == "":
		return "", &InvalidEmailError{raw, "nothing before the @"}
	case domain == "":
		return "", &InvalidEmailError{raw, "nothing after the @"}
	case len(local) > 64:
		return "", &InvalidEmailError{raw, "the part before the @ is longer than 64 characters"}
	case strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, ".."):
		return "", &InvalidEmailError{raw, "dots may not start, end or repeat before the @"}
	}
	for _, r := range local {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`"(),:;<>@[\]`, r) {
			return "", &InvalidEmailError{raw, fmt.Sprintf("the character %q is not allowed before the @", r)}
		}
	}
	ascii, err := idnaProfile.ToASCII(strings.ToLower(strings.TrimSuffix(domain, ".")))
	if err != nil {
		return "", &InvalidEmailError{raw, "the domain " + domain + " is not a valid domain name"}
	}
	if !strings.Contains(ascii, ".") {
		return "", &InvalidEmailError{raw, "the domain " + domain + " has no dot (e.g. example.com)"}
	}
	out := local + "@" + ascii
	if len(out) > 254 {
		return "", &InvalidEmailError{raw, "it is longer than 254 characters"}
	}
	return out, nil
}

// EmailDomain returns the part of a normalised address after the last @.
func EmailDomain(email string) string {
	return email[strings.LastIndexByte(email, '@')+1:]
}
