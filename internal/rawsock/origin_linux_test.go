package rawsock

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// privileged reports whether this process may set IP_TRANSPARENT and
// SO_MARK (root, or CAP_NET_ADMIN).
func privileged() bool {
	return Probe(Origin{Transparent: true, Mark: 1}) == nil
}

// TestOriginBindsTCP: a socket set up with a fixed Local address (port 0)
// connects from it; the listener sees 127.0.0.2 as its peer, and the port
// was left to the connect.
func TestOriginBindsTCP(t *testing.T) {
	skipEmulated(t)
	ln, lfd := listen(t, "127.0.0.1")
	to := ln.Addr().(*net.TCPAddr).AddrPort()
	fd, err := OpenTCP(to, "")
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	from := netip.MustParseAddr("127.0.0.2")
	if err := (Origin{Local: netip.AddrPortFrom(from, 0)}).Apply(fd); err != nil {
		t.Fatal(err)
	}
	if v, _ := unix.GetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT); v == 0 {
		t.Error("IP_BIND_ADDRESS_NO_PORT is off for a Local with port 0")
	}
	if err := Connect(fd, to); err != nil {
		t.Fatal(err)
	}
	afd, client := acceptOne(t, lfd)
	defer Close(afd)
	if client.Addr() != from || client.Port() == 0 {
		t.Errorf("the listener's peer is %v; want 127.0.0.2 and a port", client)
	}
}

// TestOriginBindsUDP: a UDP socket set up with a fixed Local address
// sends from it once connected.
func TestOriginBindsUDP(t *testing.T) {
	skipEmulated(t)
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	to := srv.LocalAddr().(*net.UDPAddr).AddrPort()
	fd, err := OpenUDP(to)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	from := netip.MustParseAddr("127.0.0.2")
	if err := (Origin{Local: netip.AddrPortFrom(from, 0)}).Apply(fd); err != nil {
		t.Fatal(err)
	}
	if err := Connect(fd, to); err != nil {
		t.Fatal(err)
	}
	if _, err := Send(fd, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, peer, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hi" || peer.Addr() != from {
		t.Errorf("the server read %q from %v (%v); want \"hi\" from 127.0.0.2", buf[:n], peer, err)
	}
}

// TestOriginTransparent: with Transparent, a socket binds to an address
// this host does not have (as it would a client's); without, it cannot.
// The mark is set as asked. Without the capability both fail with EPERM,
// named after the option, and so does Probe.
func TestOriginTransparent(t *testing.T) {
	skipEmulated(t)
	foreign := netip.MustParseAddrPort("192.0.2.1:0") // TEST-NET-1: nobody's
	for _, local := range []netip.AddrPort{foreign, netip.MustParseAddrPort("[2001:db8::1]:40000")} {
		fd, err := OpenTCP(local, "")
		if err != nil {
			t.Fatal(err)
		}
		defer Close(fd)
		if err := (Origin{Local: local}).Apply(fd); !errors.Is(err, unix.EADDRNOTAVAIL) {
			t.Errorf("bind to %v without transparency: %v; want EADDRNOTAVAIL", local, err)
		}
		o := Origin{Local: local, Transparent: true, Mark: 0xfffffffe}
		err = o.Apply(fd)
		if !privileged() {
			if !errors.Is(err, unix.EPERM) || Probe(o) == nil {
				t.Errorf("unprivileged: Apply: %v, Probe: %v; want EPERM from both", err, Probe(o))
			}
			continue
		}
		if err != nil {
			t.Fatalf("transparent bind to %v: %v", local, err)
		}
		if got, err := LocalAddr(fd); err != nil || got != local {
			t.Errorf("bound to %v, %v; want %v", got, err, local)
		}
		if m, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK); err != nil || uint32(m) != 0xfffffffe {
			t.Errorf("SO_MARK %#x, %v; want 0xfffffffe", uint32(m), err)
		}
	}
}

// TestProbeNamesTheOption: a probe's error says which option the process
// may not set.
func TestProbeNamesTheOption(t *testing.T) {
	skipEmulated(t)
	if privileged() {
		if err := Probe(Origin{Local: netip.MustParseAddrPort("[::1]:0"), Transparent: true, Mark: 3}); err != nil {
			t.Errorf("Probe as a privileged process: %v", err)
		}
		return
	}
	var se *os.SyscallError
	if err := Probe(Origin{Mark: 3}); !errors.As(err, &se) || se.Syscall != "setsockopt SO_MARK" {
		t.Errorf("Probe(mark): %v; want setsockopt SO_MARK: EPERM", err)
	}
}

// skipEmulated skips a test of socket options that qemu-user does not
// emulate (SO_MARK, IP_BIND_ADDRESS_NO_PORT, IP_TRANSPARENT): make
// bigendian runs this package's tests as s390x code under it, with
// SLUICE_EMULATED set, for the byte order of addresses.
func skipEmulated(t *testing.T) {
	t.Helper()
	if how := os.Getenv("SLUICE_EMULATED"); how != "" {
		t.Skipf("under %s, which does not emulate these socket options", how)
	}
}
