package backend

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"sluice/internal/rawsock"
)

// Source is where a pool's sockets towards its backends come from (the
// source key): the zero value lets the kernel's routing choose.
type Source struct {
	// Addr is a fixed local address to connect from; invalid: none.
	Addr netip.Addr
	// Client: connect from the client's own address, with IP_TRANSPARENT
	// (IPV6_TRANSPARENT), so that the backend sees the client as its peer.
	// A connect with no client (a health check) comes from the host's own
	// address.
	Client bool
}

// ErrSourceFamily is wrapped by the error of a connect whose source (the
// client's address, or a fixed one) is of another address family than
// the backend's address: no socket can be both. It is not held against
// the backend.
var ErrSourceFamily = errors.New("the source and the backend are of different address families")

// Origin returns how a socket towards the backend address to is set up
// for client: bound to the pool's source (a fixed address, or client as
// given when the source is the client's: TCP passes port 0, so that the
// kernel picks the port, UDP the client's own), marked with the pool's
// mark. client may be invalid when there is none (a health check). The
// error wraps ErrSourceFamily when the source cannot reach to.
func (p *Pool) Origin(client netip.AddrPort, to netip.Addr) (rawsock.Origin, error) {
	o := rawsock.Origin{Mark: p.mark}
	switch {
	case p.source.Addr.IsValid():
		o.Local = netip.AddrPortFrom(p.source.Addr, 0)
	case p.source.Client && client.IsValid():
		o.Local = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		o.Transparent = true
	default:
		return o, nil
	}
	if from := o.Local.Addr(); from.Is4() != to.Unmap().Is4() {
		what := "source " + from.String()
		if o.Transparent {
			what = "the client's address " + from.String() + ` (source = "client")`
		}
		return o, fmt.Errorf("%w: %s, backend address %s", ErrSourceFamily, what, to)
	}
	return o, nil
}

// tcpOrigin is Origin for a TCP connection from client: the kernel picks
// the port.
func (p *Pool) tcpOrigin(client netip.Addr, to netip.Addr) (rawsock.Origin, error) {
	var from netip.AddrPort
	if client.IsValid() {
		from = netip.AddrPortFrom(client, 0)
	}
	return p.Origin(from, to)
}

// dialer returns the pool's dialer, set up as o says: bound to its Local
// address, its options set before the bind.
func (p *Pool) dialerFor(o rawsock.Origin) *net.Dialer {
	if o == (rawsock.Origin{}) {
		return &p.dialer
	}
	d := p.dialer
	if o.Local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(o.Local)
	}
	cc := d.Control
	d.Control = func(network, address string, rc syscall.RawConn) error {
		if cc != nil {
			if err := cc(network, address, rc); err != nil {
				return err
			}
		}
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = o.SetOptions(int(fd)) }); cerr != nil {
			return cerr
		}
		return err
	}
	return &d
}

// sameFamily returns the addresses of addrs of the source's family for
// client (all of them when the pool has no source, or the source is the
// client's and there is none).
func (p *Pool) sameFamily(client netip.Addr, addrs []netip.Addr) []netip.Addr {
	from := p.source.Addr
	if p.source.Client {
		from = client
	}
	if !from.IsValid() {
		return addrs
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.Unmap().Is4() == from.Unmap().Is4() {
			out = append(out, a)
		}
	}
	return out
}

// CheckOrigin reports whether this process may connect to backends as
// src and mark ask: the client's address as source (IP_TRANSPARENT) and
// a mark (SO_MARK) need CAP_NET_ADMIN. The error says what to do about
// it.
func CheckOrigin(src Source, mark uint32) error {
	if !src.Client && mark == 0 {
		return nil
	}
	err := rawsock.Probe(rawsock.Origin{Transparent: src.Client, Mark: mark})
	if err == nil {
		return nil
	}
	var what []string
	if src.Client {
		what = append(what, `source = "client"`)
	}
	if mark != 0 {
		what = append(what, fmt.Sprintf("mark = %d", mark))
	}
	key, verb := what[0], "needs"
	if len(what) > 1 {
		key, verb = key+" and "+what[1], "need"
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s %s CAP_NET_ADMIN, which sluice lacks (%w): run it as root, or grant it the capability: "+
			"under systemd, AmbientCapabilities=CAP_NET_ADMIN and CapabilityBoundingSet=CAP_NET_ADMIN in a drop-in (beside the unit's CAP_NET_BIND_SERVICE); "+
			"by hand, setcap cap_net_admin+ep on the binary", key, verb, err)
	}
	return fmt.Errorf("%s: %w", key, err)
}
