package sniff

import "strings"

// TLS record and handshake numbers (RFC 8446, RFC 6066, RFC 7301).
const (
	recordTypeHandshake      = 22
	recordHeaderLen          = 5
	maxRecordLen             = 1 << 14 // TLSPlaintext.length's limit
	handshakeHeaderLen       = 4
	handshakeTypeClientHello = 1
	extensionServerName      = 0
	extensionALPN            = 16
	serverNameTypeHostName   = 0
)

// Hello is what a ClientHello says about where the client wants to go.
type Hello struct {
	// ServerName is the server_name extension's host_name, lowercased;
	// empty when the client sent none.
	ServerName string
	// ALPN is the application protocols the client offers, in its order;
	// nil when it sent no ALPN extension.
	ALPN []string
}

// ClientHello reads TLS handshake records from the start of b until one
// whole ClientHello message is assembled, however it is cut into records,
// and returns its server name and ALPN protocols. It says NeedMore while
// the bytes are a proper start of such records, NoMatch for anything else
// (another content type or handshake message, a length past its vector, a
// malformed extension), and NoMatch when the first MaxPeek bytes hold no
// complete ClientHello.
func ClientHello(b []byte) (Hello, Verdict) {
	body, v := handshakeMessage(b[:min(len(b), MaxPeek)])
	if v == NeedMore && len(b) >= MaxPeek {
		v = NoMatch
	}
	if v != Match {
		return Hello{}, v
	}
	h, ok := parseClientHello(reader(body))
	if !ok {
		return Hello{}, NoMatch
	}
	return h, Match
}

// handshakeMessage joins the fragments of the handshake records at the
// start of b until they hold one ClientHello message, and returns its body.
// The body aliases b when one record holds it all, as it usually does.
func handshakeMessage(b []byte) ([]byte, Verdict) {
	var msg []byte
	owned := false // msg is a copy, not a part of b
	for {
		frag, rest, v := record(b)
		if v != Match {
			return nil, v
		}
		b = rest
		switch {
		case msg == nil:
			msg = frag
		case !owned:
			msg = append(append(make([]byte, 0, 2*(len(msg)+len(frag))), msg...), frag...)
			owned = true
		default:
			msg = append(msg, frag...)
		}
		if msg[0] != handshakeTypeClientHello {
			return nil, NoMatch
		}
		if len(msg) < handshakeHeaderLen {
			continue
		}
		n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if handshakeHeaderLen+n > MaxPeek {
			return nil, NoMatch // it cannot fit in what is peeked
		}
		if len(msg) >= handshakeHeaderLen+n {
			return msg[handshakeHeaderLen : handshakeHeaderLen+n], Match
		}
	}
}

// record reads one whole TLS handshake record from the start of b and
// returns its fragment and what follows it.
func record(b []byte) (fragment, rest []byte, v Verdict) {
	if v := TLS(b); v != Match {
		return nil, nil, v
	}
	if len(b) < recordHeaderLen {
		return nil, nil, NeedMore
	}
	n := int(b[3])<<8 | int(b[4])
	if n == 0 || n > maxRecordLen {
		return nil, nil, NoMatch // RFC 8446 5.1: no empty handshake fragments
	}
	if len(b) < recordHeaderLen+n {
		return nil, nil, NeedMore
	}
	return b[recordHeaderLen : recordHeaderLen+n], b[recordHeaderLen+n:], Match
}

// parseClientHello reads a ClientHello body (RFC 8446 4.1.2), as Go's
// crypto/tls does: every vector within its parent, nothing left over.
func parseClientHello(r reader) (Hello, bool) {
	if !r.skip(2 + 32) { // legacy_version, random
		return Hello{}, false
	}
	session, ok := r.prefixed8()
	if !ok || len(session) > 32 {
		return Hello{}, false
	}
	suites, ok := r.prefixed16()
	if !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return Hello{}, false
	}
	compression, ok := r.prefixed8()
	if !ok || compression.empty() {
		return Hello{}, false
	}
	if r.empty() {
		return Hello{}, true // an old client: no extensions at all
	}
	extensions, ok := r.prefixed16()
	if !ok || !r.empty() {
		return Hello{}, false
	}
	return parseExtensions(extensions)
}

// parseExtensions reads the extensions block for server_name and ALPN; it
// refuses either one twice.
func parseExtensions(r reader) (Hello, bool) {
	var h Hello
	seenName, seenALPN := false, false
	for !r.empty() {
		typ, ok := r.uint16()
		data, ok2 := r.prefixed16()
		if !ok || !ok2 {
			return Hello{}, false
		}
		switch {
		case typ == extensionServerName && !seenName:
			seenName = true
			h.ServerName, ok = serverName(data)
		case typ == extensionALPN && !seenALPN:
			seenALPN = true
			h.ALPN, ok = protocols(data)
		case typ == extensionServerName || typ == extensionALPN:
			ok = false
		}
		if !ok {
			return Hello{}, false
		}
	}
	return h, true
}

// serverName reads a server_name extension (RFC 6066 section 3): a
// non-empty list in which at most one host_name, an ASCII DNS name without
// a trailing dot; entries of other types are skipped.
func serverName(data reader) (string, bool) {
	list, ok := data.prefixed16()
	if !ok || !data.empty() || list.empty() {
		return "", false
	}
	name := ""
	for !list.empty() {
		typ, ok := list.uint8()
		entry, ok2 := list.prefixed16()
		if !ok || !ok2 {
			return "", false
		}
		if typ != serverNameTypeHostName {
			continue
		}
		if name != "" || !validHostName(entry) {
			return "", false
		}
		name = strings.ToLower(string(entry))
	}
	return name, true
}

// validHostName says whether b could be a host_name: printable ASCII
// without spaces, not empty, no trailing dot.
func validHostName(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] == '.' {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// protocols reads an ALPN extension (RFC 7301 section 3.1): a non-empty
// list of non-empty protocol names.
func protocols(data reader) ([]string, bool) {
	list, ok := data.prefixed16()
	if !ok || !data.empty() || list.empty() {
		return nil, false
	}
	var names []string
	for !list.empty() {
		name, ok := list.prefixed8()
		if !ok || name.empty() {
			return nil, false
		}
		names = append(names, string(name))
	}
	return names, true
}
