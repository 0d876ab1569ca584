package mailer

import (
	"slices"
	"sort"
)

// TransportNames are the named transports a campaign may choose, sorted;
// "" (the default transport) is always allowed besides them.
func (e *Engine) TransportNames() []string {
	var names []string
	for k := range e.o.Transports {
		if k != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// HasTransport reports whether a campaign may name transport: "" or a
// configured one. A campaign naming another would fail every message.
func (e *Engine) HasTransport(name string) bool {
	return name == "" || slices.Contains(e.TransportNames(), name)
}
