// Package sniff says what the first bytes a client sent are: a TLS
// ClientHello (its server name and ALPN protocols), a plain HTTP/1.x request
// (its Host), an SSH banner or a PROXY protocol header. Every function is a
// pure function over a byte slice: no sockets, no writes to the slice
// (ClientHello copies a hello that spans records), no panic and no read out
// of bounds whatever the bytes, and an answer that does not change as more
// bytes arrive (a verdict other than NeedMore is final).
//
// It is used by the router that issue 15 adds; nothing else in sluice uses
// it yet.
package sniff

import "sluice/internal/proxyproto"

// MaxPeek is how many bytes are considered at most: a client that sends more
// than this without a complete ClientHello or HTTP header block matches
// nothing.
const MaxPeek = 16 << 10

// Verdict is what the bytes seen so far say.
type Verdict int

const (
	// NeedMore means the bytes so far are a proper start of the protocol
	// but do not yet decide it: wait for more.
	NeedMore Verdict = iota
	// Match means the bytes are the protocol, and the answer is complete.
	Match
	// NoMatch means the bytes are not the protocol, or are malformed, or
	// more than MaxPeek bytes did not complete it.
	NoMatch
)

// String returns the verdict's name, for logs and test failures.
func (v Verdict) String() string {
	switch v {
	case NeedMore:
		return "need-more"
	case Match:
		return "match"
	case NoMatch:
		return "no-match"
	}
	return "invalid"
}

// sshPrefix starts every SSH 2 client's identification string (RFC 4253
// section 4.2).
const sshPrefix = "SSH-2.0-"

// SSH says whether b starts with an SSH 2 client's banner.
func SSH(b []byte) Verdict {
	return prefix(b, sshPrefix)
}

// Proxy says whether b starts with a PROXY protocol header, version 1 or 2.
// It checks the signature only; internal/proxyproto parses the header.
func Proxy(b []byte) Verdict {
	v1, v2 := prefix(b, proxyproto.V1Prefix), prefix(b, proxyproto.V2Signature)
	switch {
	case v1 == Match || v2 == Match:
		return Match
	case v1 == NeedMore || v2 == NeedMore:
		return NeedMore
	}
	return NoMatch
}

// TLS says whether b starts like a TLS handshake record: content type 22 and
// a record version 3.0 to 3.4 (SSL 3.0 to TLS 1.3's legacy numbers).
// ClientHello reads the whole hello.
func TLS(b []byte) Verdict {
	switch {
	case len(b) == 0:
		return NeedMore
	case b[0] != recordTypeHandshake:
		return NoMatch
	case len(b) == 1:
		return NeedMore
	case b[1] != 3:
		return NoMatch
	case len(b) == 2:
		return NeedMore
	case b[2] > 4:
		return NoMatch
	}
	return Match
}

// prefix says whether b starts with sig: NeedMore while b is a proper
// prefix of sig.
func prefix(b []byte, sig string) Verdict {
	n := min(len(b), len(sig))
	if string(b[:n]) != sig[:n] {
		return NoMatch
	}
	if n < len(sig) {
		return NeedMore
	}
	return Match
}
