package mailer

import (
	"strings"
	"testing"
	"time"
)

func TestParseSTSPolicy(t *testing.T) {
	for _, c := range []struct {
		body, mode, mx, err string
		age                 time.Duration
	}{
		{"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\n", "enforce", "mx1.example.com *.example.net", "", 604800 * time.Second},
		{"version: STSv1\nmode: testing\nmx: a.test\nmax_age: 9999999999\nextension: ignored\n", "testing", "a.test", "", 31557600 * time.Second},
		{"version: STSv1\nmode: none\nmax_age: 60\n", "none", "", "", time.Minute},
		{"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 60\n", "", "", "version", 0},
		{"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 60\n", "", "", "mode", 0},
		{"version: STSv1\nmode: enforce\nmax_age: 60\n", "", "", "no mx", 0},
		{"version: STSv1\nmode: enforce\nmx: a.test\n", "", "", "max_age", 0},
		{"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", "", "", "max_age", 0},
		{"<html>not a policy</html>", "", "", "key: value", 0},
	} {
		p, err := parseSTSPolicy([]byte(c.body))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseSTSPolicy(%q) error = %v; want one about %q", c.body, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("parseSTSPolicy(%q) = %v", c.body, err)
		case c.err == "" && (p.Mode != c.mode || strings.Join(p.MX, " ") != c.mx || p.MaxAge != c.age):
			t.Errorf("parseSTSPolicy(%q) = %s %q %v; want %s %q %v", c.body, p.Mode, p.MX, p.MaxAge, c.mode, c.mx, c.age)
		}
	}
}

func TestSTSPolicyAllows(t *testing.T) {
	p := &stsPolicy{MX: []string{"mx1.example.com", "*.example.net"}}
	for host, want := range map[string]bool{"mx1.example.com": true, "MX1.Example.com.": true, "mx2.example.com": false,
		"a.example.net": true, "a.b.example.net": false, "example.net": false, "xexample.net": false} {
		if got := p.allows(host); got != want {
			t.Errorf("allows(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSTSRecordID(t *testing.T) {
	for _, c := range []struct {
		txts []string
		id   string
		ok   bool
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z", true},
		{[]string{"v=spf1 -all", "v=STSv1;id=abc"}, "abc", true},
		{[]string{"v=STSv1; id=a;", "v=STSv1; id=b;"}, "", false}, // two records: invalid
		{[]string{"v=STSv1; id=bad-id;"}, "", false},
		{[]string{"v=STSv1;"}, "", false},
		{nil, "", false},
	} {
		id, ok := stsRecordID(c.txts)
		if id != c.id || ok != c.ok {
			t.Errorf("stsRecordID(%q) = %q, %v; want %q, %v", c.txts, id, ok, c.id, c.ok)
		}
	}
}
