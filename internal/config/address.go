package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// addrRole says what an address is for; each role accepts slightly different
// addresses.
type addrRole int

const (
	// roleListen: host must be an IP literal or empty; port 0 picks a free port.
	roleListen addrRole = iota
	// roleBackend: host may be a DNS name; port 0 is an error.
	roleBackend
	// roleAdmin: host:port only (no unix socket); host may be a name.
	roleAdmin
)

// address reads an address string; label names it in messages ("listen",
// "backend", "admin").
func (s source) address(key, label string, v any, role addrRole) opt[Address] {
	o := start[Address](s, key, v)
	if v == nil {
		return o
	}
	str, ok := v.(string)
	if !ok {
		s.errorf(key, "%s %s: want a string like \"host:port\", not %s", label, show(v), typeName(v))
		return o
	}
	a, err := parseAddress(str, role)
	if err != nil {
		s.errorf(key, "%s %q: %v", label, str, err)
		return o
	}
	o.val, o.set = a, true
	return o
}

// parseAddress parses "host:port", ":port", "[v6]:port" or "unix:/path".
// Errors describe the problem only; the caller adds the value.
func parseAddress(s string, role addrRole) (Address, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		switch {
		case role == roleAdmin:
			return Address{}, errors.New(`want host:port, not a unix socket`)
		case path == "":
			return Address{}, errors.New("empty unix socket path")
		case strings.ContainsRune(path, 0) || !utf8.ValidString(path):
			return Address{}, errors.New("invalid unix socket path")
		}
		if limit := unixPathLimit(path); len(path) > limit {
			return Address{}, fmt.Errorf("unix socket path is %d bytes; the limit is %d", len(path), limit)
		}
		return Address{Network: "unix", Path: path}, nil
	}
	if s == "" {
		return Address{}, errors.New(`empty address (want "host:port")`)
	}
	host, portStr, bracketed, err := splitHostPort(s)
	if err != nil {
		return Address{}, err
	}
	port, last, err := parsePorts(portStr, role)
	if err != nil {
		return Address{}, err
	}
	host, err = checkHost(host, bracketed, role)
	if err != nil {
		return Address{}, err
	}
	return Address{Network: "tcp", Host: host, Port: port, LastPort: last}, nil
}

// parsePorts parses a port, or a range of ports "first-last" (listen and
// backend addresses only; last 0 when it is no range).
func parsePorts(s string, role addrRole) (port, last uint16, err error) {
	firstStr, lastStr, ranged := strings.Cut(s, "-")
	if !ranged || firstStr == "" {
		port, err = parsePort(s, role)
		return port, 0, err
	}
	if role == roleAdmin {
		return 0, 0, fmt.Errorf("invalid port %q (want a number)", s)
	}
	if port, err = parsePort(firstStr, roleListen); err != nil {
		return 0, 0, rangeError(s, err)
	}
	if last, err = parsePort(lastStr, roleListen); err != nil {
		return 0, 0, rangeError(s, err)
	}
	switch {
	case port == 0 || last == 0:
		return 0, 0, fmt.Errorf("port range %s holds port 0 (want first-last, each 1-65535)", s)
	case last < port:
		return 0, 0, fmt.Errorf("port range %s runs backwards (want first-last, first ≤ last)", s)
	}
	return port, last, nil
}

// rangeError words the error of one end of a port range.
func rangeError(s string, err error) error {
	return fmt.Errorf("port range %s: %v (want first-last, each 1-65535)", s, err)
}

// sunPathLen is the room for a path in a unix socket address (sun_path).
const sunPathLen = len(syscall.RawSockaddrUnix{}.Path)

// unixPathLimit returns the longest a unix socket path may be: sun_path less
// the NUL that ends a path, or all of it for an abstract name ("@name").
func unixPathLimit(path string) int {
	if strings.HasPrefix(path, "@") {
		return sunPathLen
	}
	return sunPathLen - 1
}

// splitHostPort splits an address at its port colon, insisting on brackets
// around IPv6 literals and nowhere else.
func splitHostPort(s string) (host, port string, bracketed bool, err error) {
	const badBrackets = `bad brackets (want "[v6]:port")`
	if rest, ok := strings.CutPrefix(s, "["); ok {
		host, rest, ok = strings.Cut(rest, "]")
		switch {
		case !ok || strings.ContainsAny(host, "[") || strings.ContainsAny(rest, "[]"):
			return "", "", false, errors.New(badBrackets)
		case rest == "":
			return "", "", false, errors.New("missing port")
		case rest[0] != ':':
			return "", "", false, errors.New(badBrackets)
		}
		return host, rest[1:], true, nil
	}
	if strings.ContainsAny(s, "[]") {
		return "", "", false, errors.New(badBrackets)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", false, errors.New("missing port")
	}
	host, port = s[:i], s[i+1:]
	if strings.Contains(host, ":") {
		return "", "", false, errors.New(`IPv6 address needs brackets (want "[v6]:port")`)
	}
	return host, port, false, nil
}

// parsePort parses a decimal port number.
func parsePort(s string, role addrRole) (uint16, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid port %q (want a number)", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %s out of range (max 65535)", s)
	}
	if n == 0 && role == roleBackend {
		return 0, errors.New("port 0 is not allowed for a backend")
	}
	return uint16(n), nil
}

// checkHost validates the host part and returns it normalised: IP literals
// in their canonical form, names as written.
func checkHost(host string, bracketed bool, role addrRole) (string, error) {
	if host == "" && !bracketed {
		return "", nil
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err == nil && bracketed && !ip.Is6():
		return "", errors.New(`brackets are only for IPv6 addresses`)
	case err == nil && !validZone(ip.Zone()):
		return "", fmt.Errorf("invalid IPv6 zone %q", ip.Zone())
	case err == nil:
		return ip.String(), nil
	case bracketed:
		return "", fmt.Errorf("invalid IPv6 address %q", host)
	case role == roleListen:
		return "", errors.New("host must be an IP address (listen addresses are not resolved)")
	}
	return host, checkHostName(host)
}

// validZone reports whether an IPv6 zone looks like an interface name or index.
func validZone(zone string) bool {
	for _, c := range zone {
		if !isNameChar(c) {
			return false
		}
	}
	return true
}

// isNameChar reports whether c may appear in a host name label or rule name.
func isNameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// checkHostName validates a DNS name: dot-separated labels of letters,
// digits, '-' and '_', at most 63 bytes each and 253 in all. A name whose
// last label is numeric must have been meant as an IPv4 address.
func checkHostName(name string) error {
	trimmed := strings.TrimSuffix(name, ".")
	if len(trimmed) > 253 {
		return errors.New("host name too long")
	}
	labels := strings.Split(trimmed, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("invalid host name %q", name)
		}
		for _, c := range l {
			if !isNameChar(c) {
				return fmt.Errorf("invalid host name %q", name)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("invalid IP address %q", name)
	}
	return nil
}

// prefixes reads a list of CIDR prefixes; a bare IP means a single address.
func (s source) prefixes(key string, v any) opt[[]netip.Prefix] {
	o := start[[]netip.Prefix](s, key, v)
	var out []netip.Prefix
	valid := true
	o.set = s.list(key, v, func(elem string, v any) {
		str, ok := v.(string)
		if !ok {
			s.errorf(elem, "%s entry %s: want a CIDR string, not %s", key, show(v), typeName(v))
			valid = false
			return
		}
		p, err := parsePrefix(str)
		if err != nil {
			s.errorf(elem, "%s %q: %v", key, str, err)
			valid = false
			return
		}
		out = append(out, p)
	}) && valid
	o.val = out
	return o
}

// parsePrefix parses "10.0.0.0/8", "2001:db8::/32" or a single IP, turning
// IPv4-mapped IPv6 prefixes into IPv4 ones.
func parsePrefix(s string) (netip.Prefix, error) {
	const want = `invalid CIDR (want e.g. "10.0.0.0/8", "2001:db8::/32" or a single IP)`
	var p netip.Prefix
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return netip.Prefix{}, errors.New(want)
		}
		p = netip.PrefixFrom(ip, ip.BitLen())
	} else {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New(want)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("host bits set (did you mean %q?)", m.String())
		}
	}
	if ip := p.Addr(); ip.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(ip.Unmap(), p.Bits()-96)
	}
	return p, nil
}
