package server

import (
	"fmt"
	"net"

	"sluice/internal/config"
	"sluice/internal/udp"
)

// A rule listens on one address, or on every port of a range: one TCP
// listener and one group of UDP sockets per port, all the rule's (one
// admission gate, one backend pool, one connection table). A reload diffs
// a rule's ports one by one: a port in both the old and the new listen
// address keeps its sockets and connections; only new ports are bound;
// those the new address leaves out stop accepting and drain.

// listenPorts returns the addresses, of one port each (or a unix path),
// that listening on a takes.
func listenPorts(a config.Address) []config.Address {
	out := make([]config.Address, a.Ports())
	for i := range out {
		out[i] = a.At(i)
	}
	return out
}

// samePlace reports whether two listen addresses are on the same host (or
// unix path), whatever their ports.
func samePlace(a, b config.Address) bool {
	return a.Network == b.Network && a.Host == b.Host && a.Path == b.Path
}

// keeps reports whether a rule moving its listen address from old to new
// keeps its socket on port (any port of a unix path: the path itself).
func keeps(old, new config.Address, port uint16) bool {
	switch {
	case old == new:
		return true // port 0 included: the port the kernel chose stays
	case !samePlace(old, new):
		return false
	}
	return new.Network == "unix" || old.Contains(port) && new.Contains(port)
}

// portsToBind returns the addresses of one port a change from the running
// listen address old (whose transport is on when had) to new binds anew:
// every port of new, but those it keeps.
func portsToBind(old, new config.Address, had bool) []config.Address {
	if !had {
		return listenPorts(new)
	}
	var out []config.Address
	for _, a := range listenPorts(new) {
		if !keeps(old, new, a.Port) {
			out = append(out, a)
		}
	}
	return out
}

// portOf returns the port a listening socket is bound to; 0 for a unix
// socket.
func portOf(addr net.Addr) uint16 {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return uint16(a.Port)
	case *net.UDPAddr:
		return uint16(a.Port)
	}
	return 0
}

// portAddress returns the address of port of listen, as the rule's socket
// on it is named (in a hand-over, say): listen itself unless it is a range.
func portAddress(listen config.Address, port uint16) config.Address {
	if !listen.Ranged() || !listen.Contains(port) {
		return listen
	}
	return listen.At(int(port - listen.Port))
}

// listenError words the failure to bind one port of a rule's listen
// address: a range names the port that failed.
func listenError(rc config.Rule, a config.Address, side string, err error) error {
	if rc.Listen.Ranged() {
		return fmt.Errorf("rule %q: listen %s%s: port %d: %w (no port of the range is bound)", rc.Name, rc.Listen, side, a.Port, err)
	}
	return fmt.Errorf("rule %q: listen %s%s: %w", rc.Name, rc.Listen, side, err)
}

// Footprint is what a config's rules hold in file descriptors while no
// client is connected: a listening socket per TCP port (the engine's loops
// share it), per UDP address of one port a group of sockets with their
// event loops, and per UDP range a socket per port and the rule's event
// loops, which its ports share.
type Footprint struct {
	TCPPorts, UDPPorts int // ports listened on
	Descriptors        int // held while idle
}

// FootprintOf returns cfg's footprint.
func FootprintOf(cfg *config.Config) Footprint {
	var f Footprint
	for _, rc := range cfg.Rules {
		n := rc.Listen.Ports()
		if rc.Protocol.HasTCP() {
			f.TCPPorts += n
			f.Descriptors += n
		}
		if rc.Protocol.HasUDP() {
			f.UDPPorts += n
			f.Descriptors += udpDescriptors(rc)
		}
	}
	return f
}

// udpDescriptors returns what rc's UDP side holds while idle.
func udpDescriptors(rc config.Rule) int {
	if rc.Listen.Ranged() {
		return udp.RangeDescriptors(rc.Listen.Ports(), rc.Workers)
	}
	return udp.Descriptors(rc.Workers)
}
