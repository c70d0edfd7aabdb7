package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// The kinds of place backends_from may name.
const (
	FromEtcd = "etcd" // keys under a prefix of the etcd sluice runs on (--etcd)
	FromSRV  = "srv"  // DNS SRV records of a name
)

// defaultDiscoveredRetries is the retries of a rule or route with
// backends_from that does not set it: at least this many further
// backends, however few are listed.
const defaultDiscoveredRetries = 3

// BackendsFrom is where a rule's or route's further backends are
// discovered at run time (backends_from); the zero value: nowhere.
type BackendsFrom struct {
	Kind string // FromEtcd or FromSRV; "": none
	// Name is the etcd key prefix (FromEtcd) or the SRV name asked for
	// (FromSRV), as written.
	Name string
	// Server is the DNS server asked (FromSRV only), an IP address and
	// port; invalid: the system's resolver.
	Server netip.AddrPort
}

// IsZero reports whether b names no place.
func (b BackendsFrom) IsZero() bool { return b.Kind == "" }

// String returns b as backends_from takes it: "etcd:PREFIX",
// "srv:NAME" or "srv:NAME@IP:PORT"; "" for the zero value.
func (b BackendsFrom) String() string {
	switch {
	case b.IsZero():
		return ""
	case b.Server.IsValid():
		return b.Kind + ":" + b.Name + "@" + b.Server.String()
	}
	return b.Kind + ":" + b.Name
}

// backendsFrom reads the backends_from key.
func (s source) backendsFrom(v any) opt[BackendsFrom] {
	str := s.str("backends_from", v)
	o := convert(str, func(string) BackendsFrom { return BackendsFrom{} })
	if !str.set {
		return o
	}
	b, err := parseBackendsFrom(str.val)
	if err != nil {
		s.errorf("backends_from", "backends_from %q: %v", str.val, err)
		o.set = false
		return o
	}
	o.val = b
	return o
}

// parseBackendsFrom reads "etcd:PREFIX", "srv:NAME" or "srv:NAME@IP[:PORT]".
func parseBackendsFrom(v string) (BackendsFrom, error) {
	kind, name, ok := strings.Cut(v, ":")
	switch {
	case !ok || (kind != FromEtcd && kind != FromSRV):
		return BackendsFrom{}, fmt.Errorf(`want "etcd:/key/prefix/" or "srv:_service._proto.name" (optionally "@ip:port" of the DNS server)`)
	case kind == FromEtcd && name == "":
		return BackendsFrom{}, fmt.Errorf("no key prefix after %q", "etcd:")
	case kind == FromEtcd:
		return BackendsFrom{Kind: kind, Name: name}, nil
	}
	name, server, at := strings.Cut(name, "@")
	b := BackendsFrom{Kind: kind, Name: name}
	if name == "" || strings.ContainsAny(name, " \t/:") {
		return b, fmt.Errorf("%q is not a DNS name", name)
	}
	if !at {
		return b, nil
	}
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		a, aerr := netip.ParseAddr(server)
		if aerr != nil || a.Zone() != "" {
			return b, fmt.Errorf("DNS server %q: want an IP address, with a port unless 53", server)
		}
		ap = netip.AddrPortFrom(a, 53)
	}
	if ap.Port() == 0 {
		return b, fmt.Errorf("DNS server %q: port 0", server)
	}
	b.Server = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return b, nil
}
