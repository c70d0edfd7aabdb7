package sniff

import (
	"bytes"
	"strings"
)

// HTTPHost reads a plain HTTP/1.0 or HTTP/1.1 request line and header block
// (RFC 9112) from the start of b and returns the Host header's host: port
// stripped, lowercased, and an IPv6 literal without its brackets, as
// url.URL.Hostname gives it; empty when the request has no Host header (or an
// empty one). It says NeedMore until the blank line that ends the headers,
// and NoMatch for a request line that is not a method token, a target and
// HTTP/1.0 or HTTP/1.1 (so an HTTP/2 preface is NoMatch), for a malformed
// header line, for two Host headers or a Host that is not a host[:port],
// and when the first MaxPeek bytes hold no whole header block. A single LF
// ends a line as well as CRLF does.
func HTTPHost(b []byte) (string, Verdict) {
	host, v := httpHost(b[:min(len(b), MaxPeek)])
	if v == NeedMore && len(b) >= MaxPeek {
		return "", NoMatch
	}
	return host, v
}

// httpHost is HTTPHost within the peek limit.
func httpHost(b []byte) (string, Verdict) {
	line, rest, ok := cutLine(b)
	if !ok {
		return "", requestLine(bytes.TrimSuffix(b, []byte("\r")), false)
	}
	if v := requestLine(line, true); v != Match {
		return "", v
	}
	return hostHeader(rest)
}

// cutLine cuts b at its first line end (LF or CRLF).
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:], true
}

// requestLine checks a request line: method SP request-target SP
// HTTP-version. When the line is not complete yet it says NeedMore as long
// as some ending could still make it one.
func requestLine(line []byte, complete bool) Verdict {
	fields := bytes.Split(line, []byte(" "))
	if len(fields) > 3 {
		return NoMatch
	}
	for i, f := range fields {
		last := !complete && i == len(fields)-1
		if len(f) == 0 {
			if last {
				continue // the field may yet come
			}
			return NoMatch
		}
		var ok bool
		switch i {
		case 0:
			ok = isToken(f)
		case 1:
			ok = isVisible(f)
		case 2:
			ok = isVersion(f, last)
		}
		if !ok {
			return NoMatch
		}
	}
	if !complete {
		return NeedMore
	}
	if len(fields) < 3 {
		return NoMatch
	}
	return Match
}

// isVersion says whether f is HTTP/1.0 or HTTP/1.1, or, when partial, the
// start of one.
func isVersion(f []byte, partial bool) bool {
	for _, v := range []string{"HTTP/1.0", "HTTP/1.1"} {
		if string(f) == v || partial && strings.HasPrefix(v, string(f)) {
			return true
		}
	}
	return false
}

// hostHeader reads header lines up to the blank line that ends them and
// returns the host of the one Host header.
func hostHeader(b []byte) (string, Verdict) {
	host, seen := "", false
	for {
		line, rest, ok := cutLine(b)
		if !ok {
			return "", NeedMore
		}
		b = rest
		if len(line) == 0 {
			return host, Match
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !isToken(name) || bytes.ContainsAny(value, "\r\x00") {
			return "", NoMatch // also an obs-fold line, which starts with a space
		}
		if !strings.EqualFold(string(name), "host") {
			continue
		}
		if seen {
			return "", NoMatch
		}
		seen = true
		if host, ok = hostOf(bytes.Trim(value, " \t")); !ok {
			return "", NoMatch
		}
	}
}

// hostOf returns the host of a Host value, uri-host [ ":" port ].
func hostOf(v []byte) (string, bool) {
	if len(v) == 0 {
		return "", true
	}
	var host, port []byte
	if v[0] == '[' {
		end := bytes.IndexByte(v, ']')
		if end < 0 {
			return "", false
		}
		host, port = v[1:end], v[end+1:]
		if !isIPv6(host) {
			return "", false
		}
	} else {
		host, port = v, nil
		if i := bytes.LastIndexByte(v, ':'); i >= 0 {
			host, port = v[:i], v[i:]
		}
		if !isRegName(host) {
			return "", false
		}
	}
	if len(port) > 0 && (port[0] != ':' || len(port) > 6 || !isDigits(port[1:])) {
		return "", false
	}
	return strings.ToLower(string(host)), true
}

// isToken says whether b is a non-empty token (RFC 9110 5.6.2).
func isToken(b []byte) bool {
	for _, c := range b {
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// isVisible says whether b is only visible ASCII characters, as a
// request-target is.
func isVisible(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// isRegName says whether b is a non-empty reg-name or IPv4 address (RFC
// 3986 3.2.2: unreserved, pct-encoded and sub-delims characters).
func isRegName(b []byte) bool {
	for _, c := range b {
		if !isAlnum(c) && !strings.ContainsRune("-._~%!$&'()*+,;=", rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// isIPv6 says whether b is made of an IPv6 literal's characters.
func isIPv6(b []byte) bool {
	for _, c := range b {
		if !isAlnum(c) && c != ':' && c != '.' {
			return false
		}
	}
	return len(b) > 0
}

// isDigits says whether b is only decimal digits.
func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isAlnum says whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
