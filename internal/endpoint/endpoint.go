// Package endpoint names where a listener or a backend is, as a user writes
// it: a host and port, or a unix socket path. The config parses it; the
// server, the backends and the logs print and dial it. It knows nothing of
// sockets.
package endpoint

import (
	"net"
	"strconv"
)

// Address is a listen or backend address.
type Address struct {
	// Network is "tcp" for host:port addresses and "unix" for unix:/path.
	Network string
	// Host is the host part: an IP literal (without brackets), a DNS name, or
	// empty for "all addresses" (a listener) or 127.0.0.1 (a backend). Empty
	// for unix addresses.
	Host string
	// Port is the numeric port, 0 for unix addresses.
	Port uint16
	// Path is the socket path for unix addresses.
	Path string
}

// String returns the address as a user writes it: "host:port", "[v6]:port",
// ":port" or "unix:/path".
func (a Address) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Path
	}
	return a.hostPort()
}

// DialAddress returns the address in the form net.Dial and net.Listen take.
func (a Address) DialAddress() string {
	if a.Network == "unix" {
		return a.Path
	}
	return a.hostPort()
}

// hostPort joins host and port, bracketing an IPv6 literal.
func (a Address) hostPort() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port)))
}
