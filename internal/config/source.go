package config

import (
	"math"
	"net/netip"
)

// sourceClient is the source key's word for the client's own address.
const sourceClient = "client"

// source reads the source key: an IP address, "client", or "off" (a rule
// or route lifting what it inherits) as none.
func (s source) source(v any) opt[Source] {
	str := s.str("source", v)
	o := convert(str, func(string) Source { return Source{} })
	if !str.set {
		return o
	}
	switch str.val {
	case "off":
		return o
	case sourceClient:
		o.val = Source{Client: true}
		return o
	}
	a, err := netip.ParseAddr(str.val)
	switch {
	case err != nil || a.Zone() != "":
		s.errorf("source", `source %q: want an IP address or %q`, str.val, sourceClient)
	case a.IsUnspecified():
		s.errorf("source", `source %q: the unspecified address binds nothing (leave source out, or "off")`, str.val)
	case a.IsMulticast():
		s.errorf("source", "source %q: a multicast address cannot send a connection", str.val)
	default:
		o.val = Source{Addr: a.Unmap()}
		return o
	}
	o.set = false
	return o
}

// mark reads the mark key: an integer that fits in 32 bits unsigned.
func (s source) mark(v any) opt[uint32] {
	o := start[uint32](s, "mark", v)
	if v == nil {
		return o
	}
	n, ok := v.(int64)
	switch {
	case !ok:
		s.errorf("mark", "mark %s: want an integer, not %s", show(v), typeName(v))
	case n < 0 || n > math.MaxUint32:
		s.errorf("mark", "mark %d: want 0 to %d", n, uint32(math.MaxUint32))
	default:
		o.val, o.set = uint32(n), true
	}
	return o
}

// checkSource reports what a rule's or route's source cannot do: a fixed
// address of one family with a backend given by an address of the other
// (a name is checked when it resolves), or with a unix socket backend,
// and the client's address when the clients come from a unix socket.
func checkSource(s source, listen opt[Address], src opt[Source], backends []backendAt) {
	if !src.set {
		return
	}
	if src.val.Client && listen.set && listen.val.Network == "unix" {
		s.errorAt(src.line, "source %q: the clients of a unix socket have no IP address", sourceClient)
	}
	for _, b := range backends {
		if src.val == (Source{}) {
			return
		}
		if b.Address.Network == "unix" {
			s.errorAt(b.line, "backend %q: a unix socket has no source address (source %q)", b.Address.String(), src.val.String())
			continue
		}
		if !src.val.Addr.IsValid() {
			continue
		}
		ip, ok := backendIP(b.Address)
		if ok && ip.Is4() != src.val.Addr.Is4() {
			s.errorAt(b.line, "backend %q: source %q is %s, the backend %s (a socket of one family cannot connect to the other)",
				b.Address.String(), src.val.String(), family(src.val.Addr), family(ip))
		}
	}
}

// backendIP returns the IP address of a TCP backend given by one (an
// empty host is 127.0.0.1), unmapped; ok is false for a name.
func backendIP(a Address) (netip.Addr, bool) {
	if a.Host == "" {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), true
	}
	ip, err := netip.ParseAddr(a.Host)
	return ip.Unmap(), err == nil
}

// family names an address's family for messages.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
