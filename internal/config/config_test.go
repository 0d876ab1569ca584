package config

import (
	"io"
	"strings"
	"testing"
)

func TestHostname(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		args []string
		env  map[string]string
		want string
		err  string
	}{
		{nil, nil, "[127.0.0.1]", ""},
		{[]string{"-root-url", "https://News.Example.com/"}, nil, "news.example.com", ""},
		{[]string{"-root-url", "http://[2001:db8::1]:8080"}, nil, "[IPv6:2001:db8::1]", ""},
		{[]string{"-root-url", "https://news.example.com", "-hostname", "Out1.Example.com."}, nil, "out1.example.com", ""},
		{nil, map[string]string{"HERALD_HOSTNAME": "mta.example.org"}, "mta.example.org", ""},
		{[]string{"-hostname", "192.0.2.1"}, nil, "", "is an address"},
		{[]string{"-hostname", "bad_name.example.com"}, nil, "", "not a host name"},
		{[]string{"-hostname", "-x.example.com"}, nil, "", "not a host name"},
	}
	for _, c := range cases {
		cfg, err := Parse("serve", c.args, env(c.env), io.Discard, nil)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%v, %v) = %v, want an error saying %q", c.args, c.env, err, c.err)
			}
		case err != nil:
			t.Errorf("Parse(%v, %v) = %v", c.args, c.env, err)
		case cfg.Hostname != c.want:
			t.Errorf("Parse(%v, %v).Hostname = %q, want %q", c.args, c.env, cfg.Hostname, c.want)
		}
	}
}
