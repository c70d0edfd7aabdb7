package config

import (
	"net/netip"
	"path/filepath"
)

// checkClashes reports duplicate rule names and listen addresses that
// would take another rule's socket, on the later of the two rules. It takes
// time linear in the number of ports listened on: each port of each listen
// address (one, or every port of a range) is looked up in a table of the
// ports before it.
func checkClashes(rules []built) {
	names := make(map[string]int)
	listens := newListenTable()
	ports := 0 // listened on so far, against maxListenPorts
	for j := range rules {
		b := &rules[j]
		if b.named {
			if i, dup := names[b.Name]; dup {
				b.src.errorAt(b.nameLine, "duplicate rule name (first at line %d)", rules[i].nameLine)
			} else {
				names[b.Name] = j
			}
		}
		if !b.listenOK || ports > maxListenPorts {
			continue
		}
		if ports += b.Listen.Ports(); ports > maxListenPorts {
			b.src.errorAt(b.listenLine, "listen %q: the rules listen on more than %d ports in all (the limit; a port range counts each port)", b.Listen.String(), maxListenPorts)
			continue
		}
		if i, port := listens.firstOfRange(b.Listen, b.Protocol); i != none && b.Listen.Ranged() {
			b.src.errorAt(b.listenLine, "listen %q: port %d already used by %s", b.Listen.String(), port, rules[i].src.ctx)
		} else if i != none {
			b.src.errorAt(b.listenLine, "listen %q already used by %s", b.Listen.String(), rules[i].src.ctx)
		}
		for k := range b.Listen.Ports() {
			listens.add(b.Listen.At(k), b.Protocol, j)
		}
	}
}

// maxListenPorts bounds the ports all the rules of a config listen on
// together: 16 addresses' worth of every port, far more than one process
// can hold descriptors for, and few enough that checking them stays quick
// however the file is written.
const maxListenPorts = 1 << 20

// none is no rule in a listenTable.
const none = -1

// transport is TCP or UDP: listen addresses clash only within one.
type transport uint8

const (
	overTCP transport = iota
	overUDP
)

// transports lists the transports a protocol forwards.
func transports(p Protocol) []transport {
	switch {
	case p == TCPUDP:
		return []transport{overTCP, overUDP}
	case p.HasUDP():
		return []transport{overUDP}
	}
	return []transport{overTCP}
}

// listenTable holds the listen addresses of rules, by transport and port
// (or unix path), to find the first rule whose socket a new address would
// take. Rules are numbered in the order they are added.
type listenTable struct {
	paths map[pathKey]int
	ports map[portKey]*portUsers
}

// pathKey is a unix socket path, cleaned, on one transport.
type pathKey struct {
	t    transport
	path string
}

// portKey is a port on one transport.
type portKey struct {
	t    transport
	port uint16
}

// portUsers is the first rule of each kind of host listening on one port.
type portUsers struct {
	any   int                // of any host
	all   int                // on every address
	allV4 int                // on every IPv4 address
	v4    int                // on every address, every IPv4 address, or one IPv4 address
	ips   map[netip.Addr]int // on one address; nil until one does
}

// newListenTable returns an empty table.
func newListenTable() *listenTable {
	return &listenTable{paths: make(map[pathKey]int), ports: make(map[portKey]*portUsers)}
}

// firstOfRange returns the first rule in the table whose socket a listen on
// one of a's ports would take, and that port, or none. Of a range, the
// lowest port taken is the one reported.
func (lt *listenTable) firstOfRange(a Address, p Protocol) (int, uint16) {
	for k := range a.Ports() {
		one := a.At(k)
		if i := lt.first(one, p); i != none {
			return i, one.Port
		}
	}
	return none, 0
}

// add records that rule i listens on a, an address of one port or a unix
// path, for protocol p.
func (lt *listenTable) add(a Address, p Protocol, i int) {
	for _, t := range transports(p) {
		if a.Network == "unix" {
			k := pathKey{t, filepath.Clean(a.Path)}
			if _, ok := lt.paths[k]; !ok {
				lt.paths[k] = i
			}
			continue
		}
		if a.Port == 0 {
			continue // the kernel picks a free port: no clash
		}
		k := portKey{t, a.Port}
		u := lt.ports[k]
		if u == nil {
			u = &portUsers{any: i, all: none, allV4: none, v4: none}
			lt.ports[k] = u
		}
		u.add(hostScope(a.Host), i)
	}
}

// add records that rule i listens on the addresses of s.
func (u *portUsers) add(s scope, i int) {
	setFirst := func(v *int) {
		if *v == none {
			*v = i
		}
	}
	switch {
	case s.all:
		setFirst(&u.all)
		setFirst(&u.v4)
	case s.allV4:
		setFirst(&u.allV4)
		setFirst(&u.v4)
	default:
		if s.ip.Is4() {
			setFirst(&u.v4)
		}
		if u.ips == nil {
			u.ips = make(map[netip.Addr]int)
		}
		if _, ok := u.ips[s.ip]; !ok {
			u.ips[s.ip] = i
		}
	}
}

// first returns the first rule in the table whose socket a listen on a for
// protocol p would take, or none.
func (lt *listenTable) first(a Address, p Protocol) int {
	found := none
	for _, t := range transports(p) {
		i := none
		if a.Network == "unix" {
			if j, ok := lt.paths[pathKey{t, filepath.Clean(a.Path)}]; ok {
				i = j
			}
		} else if u := lt.ports[portKey{t, a.Port}]; u != nil && a.Port != 0 {
			i = u.first(hostScope(a.Host))
		}
		found = earliest(found, i)
	}
	return found
}

// first returns the first rule on this port that a listen on the addresses
// of s would clash with, or none.
func (u *portUsers) first(s scope) int {
	switch {
	case s.all:
		return u.any
	case s.allV4:
		return u.v4
	}
	i := u.all
	if s.ip.Is4() {
		i = earliest(i, u.allV4)
	}
	if j, ok := u.ips[s.ip]; ok {
		i = earliest(i, j)
	}
	return i
}

// earliest returns the lower of two rule numbers, either of which may be
// none.
func earliest(a, b int) int {
	if a == none || b != none && b < a {
		return b
	}
	return a
}

// scope is the set of local addresses a listen host covers.
type scope struct {
	all   bool       // every address, IPv4 and IPv6
	allV4 bool       // every IPv4 address
	ip    netip.Addr // one address, IPv4-mapped ones unmapped
}

// hostScope returns what a listen host covers. A host of "" or "::" means
// every address (Go listens dual-stack); "0.0.0.0" every IPv4 address.
func hostScope(host string) scope {
	if host == "" {
		return scope{all: true}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return scope{}
	}
	ip = ip.Unmap()
	switch {
	case ip == netip.IPv6Unspecified():
		return scope{all: true}
	case ip == netip.IPv4Unspecified():
		return scope{allV4: true}
	}
	return scope{ip: ip}
}
