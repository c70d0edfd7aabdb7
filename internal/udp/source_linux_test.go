package udp

import (
	"net"
	"net/netip"
	"testing"

	"sluice/internal/backend"
	"sluice/internal/rawsock"
)

// firstSource returns the source address of the first datagram b got.
func (b *udpBackend) firstSource(t *testing.T) netip.AddrPort {
	t.Helper()
	select {
	case from := <-b.first:
		return from
	default:
		t.Fatal("the backend got no datagram")
		return netip.AddrPort{}
	}
}

// TestSourceFixed: with a fixed source, a session's backend socket sends
// from it: the backend sees 127.0.0.2, and its replies reach the client.
func TestSourceFixed(t *testing.T) {
	ioModes(t, func(t *testing.T, portable bool) {
		b := startBackend(t, "127.0.0.1", echo)
		st := backends("round-robin", b.addr())
		st.Source = backend.Source{Addr: netip.MustParseAddr("127.0.0.2")}
		f := start(t, options{portable: portable, cfg: st})
		f.mustExchange(t, client(t, ""), "ping", "ping")
		if from := b.firstSource(t); from.Addr() != st.Source.Addr {
			t.Errorf("the backend's datagrams came from %v, want 127.0.0.2", from)
		}
	})
}

// TestSourceClient: with source "client", a session's backend socket
// sends from the client's address (here the client's port is taken, by
// the client itself on this host, so the kernel picks another).
func TestSourceClient(t *testing.T) {
	if rawsock.Probe(rawsock.Origin{Transparent: true}) != nil {
		t.Skip("IP_TRANSPARENT needs CAP_NET_ADMIN, which this test process lacks")
	}
	ioModes(t, func(t *testing.T, portable bool) {
		b := startBackend(t, "127.0.0.1", echo)
		st := backends("round-robin", b.addr())
		st.Source = backend.Source{Client: true}
		f := start(t, options{portable: portable, cfg: st})
		c := client(t, "127.0.0.3")
		f.mustExchange(t, c, "ping", "ping")
		if from := b.firstSource(t); from.Addr() != netip.MustParseAddr("127.0.0.3") {
			t.Errorf("the backend's datagrams came from %v, want the client's address 127.0.0.3", from)
		}
	})
}

// TestSourceClientOtherFamily: an IPv6 client cannot be the source towards
// an IPv4 backend: its session fails, without blame on the backend and
// without pausing new sessions, and an IPv4 client goes on.
func TestSourceClientOtherFamily(t *testing.T) {
	ioModes(t, func(t *testing.T, portable bool) {
		b := startBackend(t, "127.0.0.1", echo)
		st := backends("round-robin", b.addr())
		st.Source = backend.Source{Client: true}
		f := start(t, options{portable: portable, cfg: st, listen: "::"})
		c6 := client(t, "::1")
		if _, err := c6.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(netip.IPv6Loopback(), uint16(f.addr.Port))); err != nil {
			t.Fatal(err)
		}
		recs := f.logs.waitN(t, 1, "the IPv6 client's access line", accessOf(c6.LocalAddr(), "connect-failed"))
		t.Logf("its error: %v", recs[0].Attrs["error"])
		if len(f.logs.find(isMsg(pausedMsg))) != 0 {
			t.Error("new sessions were paused for a client of the other family")
		}
		if be := f.pool.Backends()[0]; be.ConnectErrors() != 0 || !be.Up() {
			t.Errorf("backend up=%v with %d connect errors: the client's family was held against it", be.Up(), be.ConnectErrors())
		}
		if rawsock.Probe(rawsock.Origin{Transparent: true}) == nil {
			c4 := client(t, "127.0.0.1")
			if _, err := f.exchange(c4, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(f.addr.Port))), []byte("ping"), make([]byte, 16), equal([]byte("ping"))); err != nil {
				t.Fatal(err)
			}
		}
	})
}
