// Package endpoint names where a listener or a backend is, as a user writes
// it: a host and port (or a range of ports), or a unix socket path. The
// config parses it; the server, the backends and the logs print and dial
// it. It knows nothing of sockets.
package endpoint

import (
	"net"
	"strconv"
)

// MaxPorts is the most ports one range may hold: every port there is
// (1-65535).
const MaxPorts = 65535

// Address is a listen or backend address.
type Address struct {
	// Network is "tcp" for host:port addresses and "unix" for unix:/path.
	Network string
	// Host is the host part: an IP literal (without brackets), a DNS name, or
	// empty for "all addresses" (a listener) or 127.0.0.1 (a backend). Empty
	// for unix addresses.
	Host string
	// Port is the numeric port, the first of a range; 0 for unix addresses.
	Port uint16
	// LastPort is the last port of a range ("host:20000-20999"), which may
	// equal Port; 0 for an address of one port.
	LastPort uint16
	// Path is the socket path for unix addresses.
	Path string
}

// String returns the address as a user writes it: "host:port", "[v6]:port",
// ":port", "host:first-last" or "unix:/path".
func (a Address) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Path
	}
	hp := a.hostPort()
	if a.LastPort != 0 {
		hp += "-" + strconv.Itoa(int(a.LastPort))
	}
	return hp
}

// DialAddress returns the address in the form net.Dial and net.Listen take:
// for a range, that of its first port (see At).
func (a Address) DialAddress() string {
	if a.Network == "unix" {
		return a.Path
	}
	return a.hostPort()
}

// Ranged reports whether the address was written as a range of ports.
func (a Address) Ranged() bool { return a.LastPort != 0 }

// Ports returns how many ports the address covers: 1 unless it is a range,
// and 1 for a unix path.
func (a Address) Ports() int {
	if a.LastPort == 0 {
		return 1
	}
	return int(a.LastPort) - int(a.Port) + 1
}

// At returns the address of one port of a: the one i ports past its first
// (0 ≤ i < Ports()), as an address of that port alone. An address that is
// no range is its own At(i) for every i: all of a range's ports go to a
// backend of one port.
func (a Address) At(i int) Address {
	if a.LastPort == 0 {
		return a
	}
	a.Port += uint16(i)
	a.LastPort = 0
	return a
}

// Contains reports whether port is one of the address's ports.
func (a Address) Contains(port uint16) bool {
	if a.Network == "unix" {
		return false
	}
	if a.LastPort == 0 {
		return port == a.Port
	}
	return port >= a.Port && port <= a.LastPort
}

// hostPort joins host and (first) port, bracketing an IPv6 literal.
func (a Address) hostPort() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port)))
}
