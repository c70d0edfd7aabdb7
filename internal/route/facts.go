package route

import "sluice/internal/sniff"

// facts is what one Judge call has learnt of the bytes: each sniff runs at
// most once, when a route first asks for it.
type facts struct {
	b []byte

	helloDone bool
	hl        sniff.Hello
	helloV    sniff.Verdict

	hostDone bool
	host     string
	hostV    sniff.Verdict
}

// hello returns the ClientHello at the start of the bytes.
func (f *facts) hello() (sniff.Hello, sniff.Verdict) {
	if !f.helloDone {
		f.helloDone = true
		f.hl, f.helloV = sniff.ClientHello(f.b)
	}
	return f.hl, f.helloV
}

// httpHost returns the Host of the HTTP request at the start of the bytes.
func (f *facts) httpHost() (string, sniff.Verdict) {
	if !f.hostDone {
		f.hostDone = true
		f.host, f.hostV = sniff.HTTPHost(f.b)
	}
	return f.host, f.hostV
}

// detect says whether the bytes start with the protocol d (one of the
// Detect constants).
func (f *facts) detect(d string) sniff.Verdict {
	switch d {
	case DetectTLS:
		return sniff.TLS(f.b)
	case DetectHTTP:
		_, v := f.httpHost()
		return v
	case DetectSSH:
		return sniff.SSH(f.b)
	case DetectProxy:
		return sniff.Proxy(f.b)
	}
	return sniff.NoMatch
}

// seenHello returns the ClientHello the bytes hold, for the access line,
// whether or not a route asked for it; nothing when they hold no whole
// one (a route may have been chosen before it was complete).
func (f *facts) seenHello() sniff.Hello {
	if !f.helloDone && sniff.TLS(f.b) != sniff.Match {
		return sniff.Hello{}
	}
	h, v := f.hello()
	if v != sniff.Match {
		return sniff.Hello{}
	}
	return h
}
