package proxyproto

import (
	"bytes"
	"fmt"
	"net/netip"
)

// Version 1 is one line:
//
//	"PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF
//	"PROXY" SP "UNKNOWN" [SP anything-but-CR-or-LF] CRLF
const (
	v1Prefix  = "PROXY "
	maxV1Len  = 107 // longest line, CRLF included
	v1CRLFLen = 2
)

// v1Errorf returns an *Error for version 1.
func v1Errorf(format string, args ...any) error {
	return &Error{Version: 1, Reason: fmt.Sprintf(format, args...)}
}

// v1Protocols lists the protocol words a line may carry.
func v1Protocols() [3]string { return [3]string{"TCP4", "TCP6", "UNKNOWN"} }

// v1MinLen is the length of the shortest valid line whose protocol word is
// word.
func v1MinLen(word string) int {
	switch word {
	case "TCP4":
		return len("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n")
	case "TCP6":
		return len("PROXY TCP6 :: :: 0 0\r\n")
	}
	return len(v1UnknownLine)
}

// scanV1 is scan for a line that starts with 'P'.
func scanV1(b []byte) (Header, int, error) {
	if n := min(len(b), len(v1Prefix)); string(b[:n]) != v1Prefix[:n] {
		return Header{}, 0, notProxy()
	}
	if len(b) < len(v1Prefix) {
		return Header{}, minHeaderLen - len(b), nil
	}
	h, need, err := scanV1Body(b)
	if err != nil || need == 0 {
		return h, need, err
	}
	if len(b) >= maxV1Len {
		return Header{}, 0, v1Errorf("no CRLF within the first %d bytes", maxV1Len)
	}
	return Header{}, min(need, maxV1Len-len(b)), nil
}

// scanV1Body scans the line after "PROXY ".
func scanV1Body(b []byte) (Header, int, error) {
	pos := len(v1Prefix)
	word, complete := nextV1Field(b, pos)
	if !complete {
		minLen := 0
		for _, p := range v1Protocols() {
			if bytes.HasPrefix([]byte(p), word) && (minLen == 0 || v1MinLen(p) < minLen) {
				minLen = v1MinLen(p)
			}
		}
		if minLen == 0 {
			return Header{}, 0, unknownV1Protocol(word)
		}
		return Header{}, max(minLen-len(b), v1CRLFLen), nil
	}
	pos += len(word)
	switch string(word) {
	case "TCP4":
		return scanV1Addresses(b, pos, false)
	case "TCP6":
		return scanV1Addresses(b, pos, true)
	case "UNKNOWN":
		return scanV1Unknown(b, pos)
	}
	return Header{}, 0, unknownV1Protocol(word)
}

// unknownV1Protocol rejects a protocol word. It quotes the word only up to
// the first byte no valid word has there, so the reason is the same however
// much of the line has arrived.
func unknownV1Protocol(word []byte) error {
	if len(word) == 0 {
		return v1Errorf("protocol is empty")
	}
	n := 0
	for n < len(word) && isV1ProtocolPrefix(word[:n+1]) {
		n++
	}
	return v1Errorf("unknown protocol %q", word[:min(n+1, len(word))])
}

// isV1ProtocolPrefix reports whether w begins a valid protocol word.
func isV1ProtocolPrefix(w []byte) bool {
	for _, p := range v1Protocols() {
		if bytes.HasPrefix([]byte(p), w) {
			return true
		}
	}
	return false
}

// nextV1Field returns the field that starts at b[pos], up to (not
// including) the next SP, CR or LF, and whether that delimiter has arrived.
func nextV1Field(b []byte, pos int) (field []byte, complete bool) {
	i := bytes.IndexAny(b[pos:], " \r\n")
	if i < 0 {
		return b[pos:], false
	}
	return b[pos : pos+i], true
}

// v1Delimiter checks b[pos], the byte that ended a field; last says whether
// that field must be the last of the line. It returns done when the line
// ended there with CRLF, need == 1 when the LF is still to come.
func v1Delimiter(b []byte, pos int, last bool) (done bool, need int, err error) {
	switch b[pos] {
	case '\n':
		return false, 0, v1Errorf("LF without CR")
	case ' ':
		if last {
			return false, 0, v1Errorf("too many fields")
		}
		return false, 0, nil
	}
	if !last {
		return false, 0, v1Errorf("too few fields")
	}
	if pos+1 == len(b) {
		return false, 1, nil
	}
	if b[pos+1] != '\n' {
		return false, 0, v1Errorf("CR not followed by LF")
	}
	return true, 0, nil
}

// scanV1Unknown scans an UNKNOWN line from b[pos], the byte after the word.
// Whatever follows the word up to CRLF is ignored, as the specification
// asks.
func scanV1Unknown(b []byte, pos int) (Header, int, error) {
	if b[pos] == ' ' {
		i := bytes.IndexAny(b[pos+1:], "\r\n")
		if i < 0 {
			return Header{}, v1CRLFLen, nil
		}
		pos += 1 + i
	}
	done, need, err := v1Delimiter(b, pos, true)
	if !done {
		return Header{}, need, err
	}
	return Header{Version: 1, Command: Proxy, Transport: Unspec}, 0, nil
}

// scanV1Addresses scans the four fields of a TCP4 line, or of a TCP6 line
// when six is set; b[pos] is the byte after the protocol word.
func scanV1Addresses(b []byte, pos int, six bool) (Header, int, error) {
	var addrs [2]netip.Addr
	var ports [2]uint16
	fields := [4]string{"source address", "destination address", "source port", "destination port"}
	for i, what := range fields {
		if _, _, err := v1Delimiter(b, pos, false); err != nil {
			return Header{}, 0, err
		}
		pos++
		f, complete := nextV1Field(b, pos)
		if !complete {
			return Header{}, v1AddressesNeed(six, i, len(f)), nil
		}
		var err error
		switch {
		case i < 2 && six:
			addrs[i], err = parseV1IPv6(f, what)
		case i < 2:
			addrs[i], err = parseV1IPv4(f, what)
		default:
			ports[i-2], err = parseV1Port(f, what)
		}
		if err != nil {
			return Header{}, 0, err
		}
		pos += len(f)
	}
	done, need, err := v1Delimiter(b, pos, true)
	if !done {
		return Header{}, need, err
	}
	src, dst, _, _ := wireAddrs(netip.AddrPortFrom(addrs[0], ports[0]), netip.AddrPortFrom(addrs[1], ports[1]))
	return Header{Version: 1, Command: Proxy, Transport: TCP, Source: src, Destination: dst}, 0, nil
}

// v1AddressesNeed is the least number of bytes a valid TCP4 (TCP6 if six)
// line still needs when field i of the four has n bytes so far and no
// delimiter yet.
func v1AddressesNeed(six bool, i, n int) int {
	minAddr := len("0.0.0.0")
	if six {
		minAddr = len("::")
	}
	minLen := [4]int{minAddr, minAddr, 1, 1}
	need := max(minLen[i]-n, 0)
	for _, m := range minLen[i+1:] {
		need += 1 + m
	}
	return need + v1CRLFLen
}

// parseV1IPv4 parses a TCP4 address: four decimal octets, 0 to 255, with no
// leading zeros.
func parseV1IPv4(f []byte, what string) (netip.Addr, error) {
	if len(f) == 0 {
		return netip.Addr{}, v1Errorf("%s is empty", what)
	}
	if bytes.IndexByte(f, ':') >= 0 {
		return netip.Addr{}, v1Errorf("%s %q is IPv6 in a TCP4 line", what, f)
	}
	octets := bytes.Split(f, []byte("."))
	if len(octets) != 4 {
		return netip.Addr{}, v1Errorf("%s %q is not an IPv4 address", what, f)
	}
	var a [4]byte
	for i, o := range octets {
		if len(o) == 0 || len(o) > 3 || !allDigits(o) {
			return netip.Addr{}, v1Errorf("%s %q is not an IPv4 address", what, f)
		}
		if len(o) > 1 && o[0] == '0' {
			return netip.Addr{}, v1Errorf("%s %q has an octet with a leading zero", what, f)
		}
		v := decimal(o)
		if v > 255 {
			return netip.Addr{}, v1Errorf("%s %q has an octet above 255", what, f)
		}
		a[i] = byte(v)
	}
	return netip.AddrFrom4(a), nil
}

// parseV1IPv6 parses a TCP6 address: an IPv6 address in any form
// inet_pton(3) accepts (including "::ffff:192.0.2.1", which dual-stack
// senders write), without a zone.
func parseV1IPv6(f []byte, what string) (netip.Addr, error) {
	if len(f) == 0 {
		return netip.Addr{}, v1Errorf("%s is empty", what)
	}
	if bytes.IndexByte(f, '%') >= 0 {
		return netip.Addr{}, v1Errorf("%s %q has a zone", what, f)
	}
	a, err := netip.ParseAddr(string(f))
	if err != nil {
		return netip.Addr{}, v1Errorf("%s %q is not an IPv6 address", what, f)
	}
	if a.Is4() {
		return netip.Addr{}, v1Errorf("%s %q is IPv4 in a TCP6 line", what, f)
	}
	return a, nil
}

// parseV1Port parses a port: a decimal number, 0 to 65535, with no leading
// zero.
func parseV1Port(f []byte, what string) (uint16, error) {
	switch {
	case len(f) == 0:
		return 0, v1Errorf("%s is empty", what)
	case !allDigits(f):
		return 0, v1Errorf("%s %q is not a decimal number", what, f)
	case len(f) > 1 && f[0] == '0':
		return 0, v1Errorf("%s %q has a leading zero", what, f)
	case len(f) > 5 || decimal(f) > 65535:
		return 0, v1Errorf("%s %q is above 65535", what, f)
	}
	return uint16(decimal(f)), nil
}

// allDigits reports whether f is made of ASCII decimal digits only.
func allDigits(f []byte) bool {
	for _, c := range f {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// decimal returns the value of f, at most 5 ASCII digits.
func decimal(f []byte) int {
	v := 0
	for _, c := range f {
		v = v*10 + int(c-'0')
	}
	return v
}
