// Package route chooses a routed rule's route by the first bytes its client
// sends: a Table holds each route's matchers (TLS server name and ALPN,
// HTTP/1.x Host, protocol detection), and Judge says which route the bytes
// seen so far choose, that none does, or that it needs more of them. The
// bytes are read by internal/sniff; this package only weighs its answers.
// It opens no sockets and keeps no state between calls.
package route

import (
	"fmt"
	"strings"

	"sluice/internal/sniff"
)

// MaxPeek is how many of a client's first bytes Judge considers at most: a
// client that sends this many without deciding any route matches none.
const MaxPeek = sniff.MaxPeek

// The protocols a Spec's Detect may name.
const (
	DetectTLS   = "tls"   // a TLS handshake record
	DetectHTTP  = "http"  // an HTTP/1.0 or HTTP/1.1 request's header block
	DetectSSH   = "ssh"   // an SSH 2 client's banner
	DetectProxy = "proxy" // a PROXY protocol header's signature, v1 or v2
)

// Spec is what one route matches. A route matches when every matcher it
// gives matches; a matcher matches when one element of its list does. A
// Spec with no matcher matches every client. Names compare without regard
// to case; "*.example.org" in SNI or HTTPHost matches every name that ends
// in ".example.org", not the bare domain.
type Spec struct {
	SNI      []string // TLS server names
	ALPN     []string // TLS ALPN protocols, one of which the client must offer
	HTTPHost []string // HTTP/1.x Host header values, port stripped
	Detect   []string // protocols: DetectTLS, DetectHTTP, DetectSSH, DetectProxy
}

// Table chooses among routes. It is immutable, and safe for concurrent use.
type Table struct {
	routes []matcher
}

// matcher is one route's Spec, lower-cased and checked.
type matcher struct {
	sni, alpn, hosts []string
	detect           []string
}

// New returns the table of specs, tried in their order. It fails on a
// Detect it does not know.
func New(specs []Spec) (*Table, error) {
	t := &Table{routes: make([]matcher, len(specs))}
	for i, sp := range specs {
		for _, d := range sp.Detect {
			switch strings.ToLower(d) {
			case DetectTLS, DetectHTTP, DetectSSH, DetectProxy:
			default:
				return nil, fmt.Errorf("route %d: detect %q: want tls, http, ssh or proxy", i+1, d)
			}
		}
		t.routes[i] = matcher{sni: lower(sp.SNI), alpn: lower(sp.ALPN), hosts: lower(sp.HTTPHost), detect: lower(sp.Detect)}
	}
	return t, nil
}

// lower returns the lower-cased copy of names.
func lower(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, strings.ToLower(n))
	}
	return out
}

// Len returns the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// What Verdict.Route holds when no route is chosen.
const (
	// NoRoute: no route matches; the client takes the default route.
	NoRoute = -1
	// NeedMore: the bytes so far do not decide; wait for more.
	NeedMore = -2
)

// Verdict is what Judge decided.
type Verdict struct {
	// Route is the index of the chosen route, NoRoute or NeedMore.
	Route int
	// Hello is the client's ClientHello, when the bytes held a whole one:
	// its server name and ALPN protocols, for the access line.
	Hello sniff.Hello
}

// Judge says which route a client's first bytes choose: the first route
// whose every matcher matches, once every route before it is known not to
// match. atEOF says that no more bytes will come (the client half-closed,
// or its time is up): then the answer is never NeedMore. Past MaxPeek
// bytes a route still undecided does not match.
func (t *Table) Judge(first []byte, atEOF bool) Verdict {
	f := facts{b: first[:min(len(first), MaxPeek)]}
	v := Verdict{Route: NoRoute}
	for i := range t.routes {
		m := t.routes[i].judge(&f)
		if m == sniff.NeedMore && (atEOF || len(first) >= MaxPeek) {
			m = sniff.NoMatch
		}
		if m == sniff.NeedMore {
			v.Route = NeedMore
			break
		}
		if m == sniff.Match {
			v.Route = i
			break
		}
	}
	if v.Route != NeedMore {
		v.Hello = f.seenHello()
	}
	return v
}

// judge says whether the route matches the bytes of f: NoMatch as soon as
// one of its matchers does not, NeedMore while one cannot tell yet.
func (m *matcher) judge(f *facts) sniff.Verdict {
	v := sniff.Match
	for _, w := range [...]sniff.Verdict{m.judgeSNI(f), m.judgeALPN(f), m.judgeHost(f), m.judgeDetect(f)} {
		switch w {
		case sniff.NoMatch:
			return sniff.NoMatch
		case sniff.NeedMore:
			v = sniff.NeedMore
		}
	}
	return v
}

// judgeSNI matches the ClientHello's server name, if the route names any.
func (m *matcher) judgeSNI(f *facts) sniff.Verdict {
	if m.sni == nil {
		return sniff.Match
	}
	h, v := f.hello()
	if v != sniff.Match {
		return v
	}
	return verdict(anyName(m.sni, h.ServerName))
}

// judgeALPN matches the protocols the ClientHello offers, if the route
// names any.
func (m *matcher) judgeALPN(f *facts) sniff.Verdict {
	if m.alpn == nil {
		return sniff.Match
	}
	h, v := f.hello()
	if v != sniff.Match {
		return v
	}
	for _, offered := range h.ALPN {
		for _, want := range m.alpn {
			if strings.EqualFold(offered, want) {
				return sniff.Match
			}
		}
	}
	return sniff.NoMatch
}

// judgeHost matches the HTTP request's Host, if the route names any.
func (m *matcher) judgeHost(f *facts) sniff.Verdict {
	if m.hosts == nil {
		return sniff.Match
	}
	host, v := f.httpHost()
	if v != sniff.Match {
		return v
	}
	return verdict(anyName(m.hosts, host))
}

// judgeDetect matches the protocols the route detects: any one of them.
func (m *matcher) judgeDetect(f *facts) sniff.Verdict {
	if m.detect == nil {
		return sniff.Match
	}
	v := sniff.NoMatch
	for _, d := range m.detect {
		switch f.detect(d) {
		case sniff.Match:
			return sniff.Match
		case sniff.NeedMore:
			v = sniff.NeedMore
		}
	}
	return v
}

// anyName reports whether name is one of patterns: equal (both are
// lower-case), or under the domain of a "*.domain" pattern.
func anyName(patterns []string, name string) bool {
	if name == "" {
		return false
	}
	for _, p := range patterns {
		if suffix, wild := strings.CutPrefix(p, "*"); wild && strings.HasPrefix(suffix, ".") {
			if len(name) > len(suffix) && strings.HasSuffix(name, suffix) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// verdict is Match for true, NoMatch for false.
func verdict(ok bool) sniff.Verdict {
	if ok {
		return sniff.Match
	}
	return sniff.NoMatch
}
