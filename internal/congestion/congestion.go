// Package congestion chooses the TCP congestion control of sluice's
// connections, as a rule's congestion_control key says.
//
// The default, "auto", leaves connections to other hosts with the system's
// algorithm and gives connections whose peer is on this host (a loopback
// address) a loss-based one (cubic). Loopback has no queue to keep short and
// never drops, so a paced algorithm such as BBR, a common system default,
// only spaces out the segments of a connection that could go at memory
// speed: measured here, a relay through loopback moved bulk data a third
// slower under BBR than under cubic.
package congestion

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// The special values of congestion_control.
const (
	// Auto picks LoopbackAlgorithm for loopback peers and leaves others alone.
	Auto = "auto"
	// System never changes the algorithm the kernel gives a socket.
	System = "system"
)

// LoopbackAlgorithm is what Auto gives connections to loopback peers.
const LoopbackAlgorithm = "cubic"

// maxName is the longest algorithm name the kernel takes (TCP_CA_NAME_MAX
// is 16 bytes with the terminating zero).
const maxName = 15

// Choice is one rule's congestion_control setting. The zero Choice is Auto.
type Choice struct {
	name string // "": Auto; System; or an algorithm for every connection
	// keepLoopback makes Auto leave loopback peers alone too: this
	// process may not choose LoopbackAlgorithm (see WithoutLoopback).
	keepLoopback bool
}

// WithoutLoopback returns c such that Auto no longer gives loopback peers
// LoopbackAlgorithm, for a process that may not choose it (Allowed fails):
// trying would fail on every connection. Other choices are returned as
// they are.
func (c Choice) WithoutLoopback() Choice {
	if c.name == "" {
		c.keepLoopback = true
	}
	return c
}

// IsAuto reports whether c is Auto.
func (c Choice) IsAuto() bool { return c.name == "" }

// Parse reads a congestion_control value: "auto", "system" or the name of
// an algorithm (as in /proc/sys/net/ipv4/tcp_available_congestion_control).
// Whether the kernel has the algorithm is checked by Check, not here.
func Parse(s string) (Choice, error) {
	switch s {
	case "", Auto:
		return Choice{}, nil
	case System:
		return Choice{name: System}, nil
	}
	if !validName(s) {
		return Choice{}, fmt.Errorf("%q: not an algorithm name (want %q, %q or a name such as \"cubic\" or \"bbr\")", s, Auto, System)
	}
	return Choice{name: s}, nil
}

// validName reports whether s can name a kernel congestion control
// algorithm: 1 to 15 lower-case letters, digits and underscores.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxName {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// String returns the setting as written in a config file.
func (c Choice) String() string {
	if c.name == "" {
		return Auto
	}
	return c.name
}

// For returns the algorithm a connection with peer should use, or "" to
// leave the socket as the kernel made it.
func (c Choice) For(peer netip.Addr) string {
	switch c.name {
	case "":
		if peer.Unmap().IsLoopback() && !c.keepLoopback {
			return LoopbackAlgorithm
		}
		return ""
	case System:
		return ""
	}
	return c.name
}

// ForListener returns the algorithm that every connection accepted on a
// listener bound to addr should use, and whether there is one such: a
// listener given it passes it on to the sockets it accepts, which then need
// no call of their own. With Auto on a listener that is not on loopback,
// the algorithm depends on each client (uniform is false).
func (c Choice) ForListener(addr netip.Addr) (name string, uniform bool) {
	if c.name == "" && !addr.Unmap().IsLoopback() {
		return "", false
	}
	return c.For(addr), true
}

// DialControl returns a net.Dialer Control hook that gives each new TCP
// socket the algorithm For its destination, best effort (Check has vetted
// a named one).
func (c Choice) DialControl() func(network, address string, rc syscall.RawConn) error {
	return control(c.For)
}

// ListenControl returns a net.ListenConfig Control hook that gives a TCP
// listening socket, before it listens, the algorithm ForListener finds for
// every connection it will accept, when there is one; the accepted sockets
// inherit it.
func (c Choice) ListenControl() func(network, address string, rc syscall.RawConn) error {
	return control(func(a netip.Addr) string {
		if name, uniform := c.ForListener(a); uniform {
			return name
		}
		return ""
	})
}

// control is a Control hook that sets the algorithm pick chooses for a TCP
// socket's address. Other sockets are left alone.
func control(pick func(netip.Addr) string) func(network, address string, rc syscall.RawConn) error {
	return func(network, address string, rc syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		if ap, err := netip.ParseAddrPort(address); err == nil {
			_ = Set(rc, pick(ap.Addr()))
		}
		return nil
	}
}

// Named returns the algorithm the choice names for every connection, or ""
// for Auto and System.
func (c Choice) Named() string {
	if c.name == System {
		return ""
	}
	return c.name
}
