package backend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/rawsock"
)

// peerServer is a backend that tells, for every connection it accepts,
// the peer address it sees.
type peerServer struct {
	addr  Address
	peers chan netip.AddrPort
}

// startPeerServer listens on 127.0.0.1:0; each connection is noted and
// held open until the peer closes it.
func startPeerServer(t *testing.T) *peerServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &peerServer{addr: tcpAddr(t, ln.Addr()), peers: make(chan netip.AddrPort, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			go func() {
				defer c.Close()
				var b [1]byte
				c.Read(b[:])
			}()
		}
	}()
	return s
}

// next returns the peer of the next connection the server accepts.
func (s *peerServer) next(t *testing.T) netip.AddrPort {
	t.Helper()
	select {
	case p := <-s.peers:
		return p
	case <-time.After(waitLimit):
		t.Fatal("no connection reached the backend")
		return netip.AddrPort{}
	}
}

// socketMark returns the SO_MARK of a connection's socket.
func socketMark(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var m int
	var merr error
	rc.Control(func(fd uintptr) { m, merr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
	if merr != nil {
		t.Fatal(merr)
	}
	return uint32(m)
}

// connectDirect runs one connect of a's direct path to success and
// returns the backend socket (the caller closes it).
func connectDirect(t *testing.T, a *Attempts) int {
	t.Helper()
	fd, err := a.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatal(err)
	}
	b, err := a.Connected(fd)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	return fd
}

// TestSourceFixed: with a fixed source, the direct path, the net
// package's path and the health checks all connect from it: the backend
// sees 127.0.0.2 as its peer; the mark is on the sockets (when this
// process may set one: a fixed source needs no capability).
func TestSourceFixed(t *testing.T) {
	mark := uint32(0x2a)
	if rawsock.Probe(rawsock.Origin{Mark: mark}) != nil {
		t.Log("SO_MARK needs CAP_NET_ADMIN, which this test process lacks: no mark")
		mark = 0
	}
	srv := startPeerServer(t)
	from := netip.MustParseAddr("127.0.0.2")
	st := Settings{Name: "web", Backends: backends([]Address{srv.addr}, nil),
		Source: Source{Addr: from}, Mark: mark, ConnectTimeout: waitLimit}
	p := NewPool(st, nil, nil)
	if !p.Direct() {
		t.Fatal("a pool of one IP address with a source is not Direct")
	}
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("127.0.0.9"), nil, nil)
	fd := connectDirect(t, &a)
	defer unix.Close(fd)
	if peer := srv.next(t); peer.Addr() != from {
		t.Errorf("direct path: the backend's peer is %v, want %v", peer, from)
	}
	if m, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK); uint32(m) != mark {
		t.Errorf("direct path: SO_MARK %#x, want %#x", m, mark)
	}
	c, b, err := p.Dial(context.Background(), netip.MustParseAddr("127.0.0.9"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b.Release()
	if peer := srv.next(t); peer.Addr() != from {
		t.Errorf("net path: the backend's peer is %v, want %v", peer, from)
	}
	if m := socketMark(t, c); m != mark {
		t.Errorf("net path: SO_MARK %#x, want %#x", m, mark)
	}
	st.HealthCheck = &HealthCheck{Interval: time.Hour, Timeout: waitLimit, Rise: 1, Fall: 1}
	hp := NewPool(st, nil, nil)
	hp.Start()
	defer hp.Stop()
	if peer := srv.next(t); peer.Addr() != from {
		t.Errorf("health check: the backend's peer is %v, want %v", peer, from)
	}
}

// TestSourceClient: with source "client", both paths connect from the
// client's address (port chosen by the kernel), set transparent; a health
// check, which has no client, from the host's own.
func TestSourceClient(t *testing.T) {
	if rawsock.Probe(rawsock.Origin{Transparent: true}) != nil {
		t.Skip("IP_TRANSPARENT needs CAP_NET_ADMIN, which this test process lacks")
	}
	srv := startPeerServer(t)
	client := netip.MustParseAddr("127.0.0.3")
	st := Settings{Name: "web", Backends: backends([]Address{srv.addr}, nil), Source: Source{Client: true}, ConnectTimeout: waitLimit}
	p := NewPool(st, nil, nil)
	var a Attempts
	p.Begin(&a, client, nil, nil)
	fd := connectDirect(t, &a)
	defer unix.Close(fd)
	if peer := srv.next(t); peer.Addr() != client {
		t.Errorf("direct path: the backend's peer is %v, want the client %v", peer, client)
	}
	if v, _ := unix.GetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT); v != 1 {
		t.Error("direct path: the socket is not transparent")
	}
	c, b, err := p.Dial(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b.Release()
	if peer := srv.next(t); peer.Addr() != client {
		t.Errorf("net path: the backend's peer is %v, want the client %v", peer, client)
	}
	st.HealthCheck = &HealthCheck{Interval: time.Hour, Timeout: waitLimit, Rise: 1, Fall: 1}
	hp := NewPool(st, nil, nil)
	hp.Start()
	defer hp.Stop()
	if peer := srv.next(t); peer.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("health check: the backend's peer is %v, want 127.0.0.1 (no client)", peer)
	}
}

// TestSourceFamilyMismatch: a client of one family cannot be the source
// towards a backend of the other, and a fixed source cannot reach a name
// that resolves to the other family only: a failed connect that says so,
// not held against the backend.
func TestSourceFamilyMismatch(t *testing.T) {
	srv := startPeerServer(t)
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{srv.addr}, nil), Source: Source{Client: true}}, nil, nil)
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("::1"), nil, nil)
	_, err := a.Next()
	if !errors.Is(err, ErrSourceFamily) {
		t.Errorf("direct path, IPv6 client to an IPv4 backend: %v; want ErrSourceFamily", err)
	}
	if _, _, err := p.Dial(context.Background(), netip.MustParseAddr("::1")); !errors.Is(err, ErrSourceFamily) {
		t.Errorf("net path: %v; want ErrSourceFamily", err)
	}
	lookup := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	named := Address{Network: "tcp", Host: "backend.test", Port: srv.addr.Port}
	np := NewPool(Settings{Name: "web", Backends: backends([]Address{named}, nil), Source: Source{Addr: netip.MustParseAddr("::1")}},
		NewResolver(lookup, nil), nil)
	_, _, err = np.Dial(context.Background(), netip.MustParseAddr("127.0.0.9"))
	if !errors.Is(err, ErrSourceFamily) {
		t.Errorf("IPv6 source, a name with IPv4 addresses only: %v; want ErrSourceFamily", err)
	}
	t.Logf("the error: %v", err)
	for _, pool := range []*Pool{p, np} {
		if n := pool.backends[0].ConnectErrors(); n != 0 || !pool.backends[0].Up() {
			t.Errorf("the backend has %d connect errors, up %v; a source's family is not its fault", n, pool.backends[0].Up())
		}
	}
	select {
	case peer := <-srv.peers:
		t.Errorf("a connection reached the backend from %v", peer)
	default:
	}
}

// TestCheckOrigin: a process that may not set what the source and mark
// need is told what to do about it.
func TestCheckOrigin(t *testing.T) {
	if err := CheckOrigin(Source{Addr: netip.MustParseAddr("127.0.0.2")}, 0); err != nil {
		t.Errorf("a fixed source needs no capability: %v", err)
	}
	err := CheckOrigin(Source{Client: true}, 7)
	if rawsock.Probe(rawsock.Origin{Transparent: true, Mark: 7}) == nil {
		if err != nil {
			t.Errorf("a privileged process: %v", err)
		}
		return
	}
	if err == nil || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("CheckOrigin unprivileged: %v; want a permission error", err)
	}
	t.Logf("the error: %v", err)
}
