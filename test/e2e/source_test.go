package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The addresses of the three namespaces the source tests make: a client,
// the sluice host between two links, and a backend whose route to the
// client's network goes through the sluice host.
const (
	srcClientIP  = "10.0.0.2" // client ns, link c0 <-> s0
	srcListenIP  = "10.0.0.1" // sluice ns, s0
	srcUplinkIP  = "10.0.1.1" // sluice ns, s1
	srcBackendIP = "10.0.1.2" // backend ns, link b0 <-> s1
)

// sourceTopologyScript makes the namespaces $C, $S and $B, and on the
// sluice host ($S) the setup docs/OPERATIONS.md describes for source =
// "client": replies from the backend network are this host's to take
// (iif s1 -> table 100, where every address is local), and, to show that
// mark works, the backend is reachable only from sockets marked 1 (table
// 200), as a host routing its transparent traffic apart would have it.
const sourceTopologyScript = `
set -e
C=$1 S=$2 B=$3
ip netns add "$C"
ip netns add "$S"
ip netns add "$B"
ip link add c0 netns "$C" type veth peer name s0 netns "$S"
ip link add s1 netns "$S" type veth peer name b0 netns "$B"
for ns in "$C" "$S" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$C" addr add 10.0.0.2/24 dev c0 && ip -n "$C" link set c0 up
ip -n "$S" addr add 10.0.0.1/24 dev s0 && ip -n "$S" link set s0 up
ip -n "$S" addr add 10.0.1.1/24 dev s1 && ip -n "$S" link set s1 up
ip -n "$B" addr add 10.0.1.2/24 dev b0 && ip -n "$B" link set b0 up
ip -n "$C" route add default via 10.0.0.1
ip -n "$B" route add default via 10.0.1.1
ip netns exec "$S" sh -c 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > "$f"; done'
ip -n "$S" rule add iif s1 lookup 100
ip -n "$S" route add local 0.0.0.0/0 dev lo table 100
ip -n "$S" route add unreachable 10.0.1.2/32
ip -n "$S" rule add fwmark 1 lookup 200
ip -n "$S" route add 10.0.1.2/32 dev s1 table 200
`

// sourceTopology makes the client, sluice and backend namespaces (see
// sourceTopologyScript) and removes them when the test ends. It returns
// their names. Where no namespace can be made the test is skipped, but
// never under CI=true: CI runs as root, and a skip there would hide a
// broken test.
func sourceTopology(t *testing.T) (client, sluice, backend string) {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true, yet %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		skip("making network namespaces needs root")
	}
	for _, tool := range []string{"ip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(tool + " is not installed")
		}
	}
	prefix := fmt.Sprintf("sluice-src-%d-%s", os.Getpid(), strconv.FormatInt(time.Now().UnixNano()%1e6, 36))
	client, sluice, backend = prefix+"-c", prefix+"-s", prefix+"-b"
	t.Cleanup(func() {
		for _, ns := range []string{client, sluice, backend} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	out, err := exec.Command("bash", "-c", sourceTopologyScript, "topology", client, sluice, backend).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("Operation not permitted")) || bytes.Contains(out, []byte("mount")) {
			skip(fmt.Sprintf("cannot make network namespaces here: %s", out))
		}
		t.Fatalf("making the namespaces: %v\n%s", err, out)
	}
	return client, sluice, backend
}

// inNetns runs fn on a thread of its own in the named network namespace,
// so that the sockets fn opens belong to that namespace (they stay there,
// whatever thread uses them later). The thread is never unlocked: it ends
// with its goroutine, and no other goroutine runs in the namespace.
func inNetns(name string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", name))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// peerEchoTCP serves on ln: to each connection it writes the peer address
// it sees and a newline, then echoes what it reads until EOF.
func peerEchoTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "peer=%s\n", c.RemoteAddr())
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
		}()
	}
}

// peerEchoUDP answers each datagram on c with the peer address it sees, a
// space and the datagram.
func peerEchoUDP(c *net.UDPConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		c.WriteToUDPAddrPort(append([]byte("peer="+from.String()+" "), buf[:n]...), from)
	}
}

// TestSourceClientInNamespaces: with source = "client" and mark = 1, a
// backend in another network namespace sees the client's own address as
// its peer, for TCP (the client's IP) and UDP (its IP and port), and the
// bytes pass intact both ways: the replies come back through the sluice
// host by the policy routing docs/OPERATIONS.md describes.
func TestSourceClientInNamespaces(t *testing.T) {
	clientNS, sluiceNS, backendNS := sourceTopology(t)
	backendAddr := net.JoinHostPort(srcBackendIP, "9000")
	err := inNetns(backendNS, func() error {
		ln, err := net.Listen("tcp", backendAddr)
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		go peerEchoTCP(ln)
		uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(backendAddr)))
		if err != nil {
			return err
		}
		t.Cleanup(func() { uc.Close() })
		go peerEchoUDP(uc)
		return nil
	})
	if err != nil {
		t.Fatalf("backend: %v", err)
	}
	listen := net.JoinHostPort(srcListenIP, "8000")
	cfg := writeConfig(t, fmt.Sprintf(`log_format = "json"
[[rule]]
name = "transparent"
listen = %q
protocol = "tcp+udp"
backends = [%q]
source = "client"
mark = 1
`, listen, backendAddr))
	p := startProc(t, nil, "ip", "netns", "exec", sluiceNS, sluiceBin, "-c", cfg)
	if !p.waitListening(listen) {
		t.Fatalf("sluice did not start:\n%s", p.stderr())
	}
	t.Run("tcp", func(t *testing.T) { sourceTCP(t, clientNS, listen) })
	t.Run("udp", func(t *testing.T) { sourceUDP(t, clientNS, listen) })
}

// sourceTCP sends 1 MiB through sluice from the client namespace and
// checks that the backend saw the client's address and echoed every byte.
func sourceTCP(t *testing.T, clientNS, listen string) {
	var c net.Conn
	if err := inNetns(clientNS, func() (err error) {
		c, err = net.DialTimeout("tcp", listen, waitLimit)
		return err
	}); err != nil {
		t.Fatalf("client: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the backend's peer line: %v", err)
	}
	peer, err := netip.ParseAddrPort(strings.TrimPrefix(strings.TrimSpace(line), "peer="))
	if err != nil || peer.Addr() != netip.MustParseAddr(srcClientIP) {
		t.Errorf("the backend saw %q as its peer, want the client's address %s", strings.TrimSpace(line), srcClientIP)
	}
	echoed, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading the echo: %v (after %d bytes)", err, len(echoed))
	}
	if !bytes.Equal(echoed, payload) {
		t.Errorf("the echo differs: %d bytes back of %d sent", len(echoed), len(payload))
	}
}

// sourceUDP sends datagrams through sluice from the client namespace and
// checks that the backend saw the client's address and port, and that
// each reply carries the datagram back whole.
func sourceUDP(t *testing.T, clientNS, listen string) {
	var c *net.UDPConn
	if err := inNetns(clientNS, func() (err error) {
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(srcClientIP)})
		return err
	}); err != nil {
		t.Fatalf("client: %v", err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(listen))
	want := "peer=" + c.LocalAddr().String() + " "
	buf := make([]byte, 64<<10)
	for i := range 3 {
		msg := make([]byte, 1200)
		rand.Read(msg)
		got, err := exchangeUDP(c, to, msg, buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !bytes.HasPrefix(got, []byte(want)) || !bytes.Equal(got[len(want):], msg) {
			prefix, _, _ := bytes.Cut(got, []byte(" "))
			t.Fatalf("datagram %d: the backend answered %q and %d bytes; want %q and the %d bytes sent", i, prefix, len(got)-len(prefix)-1, want, len(msg))
		}
	}
}

// exchangeUDP sends msg to to until a reply comes (a few tries: even a
// veth may drop a datagram on a loaded machine) and returns it.
func exchangeUDP(c *net.UDPConn, to *net.UDPAddr, msg, buf []byte) ([]byte, error) {
	for try := 0; try < 5; try++ {
		if _, err := c.WriteToUDP(msg, to); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := c.ReadFromUDP(buf)
		if err == nil {
			return buf[:n], nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no reply to %d tries", 5)
}

// TestSourceNeedsCapability: run without CAP_NET_ADMIN (as nobody), sluice
// refuses to start a rule with source = "client", or with a mark, and
// says how to grant it; a reload that brings one is refused the same way
// and the running rules stay.
func TestSourceNeedsCapability(t *testing.T) {
	needRoot(t, "to run sluice as nobody")
	dir, err := os.MkdirTemp("", "sluice-src-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.toml")
	write := func(extra string) {
		text := "log_format = \"json\"\n[[rule]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nbackends = [\"127.0.0.1:9\"]\n" + extra
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, extra := range []string{"source = \"client\"\n", "mark = 7\n"} {
		write(extra)
		res := runSluice(t, asNobody, "-c", path)
		if res.code == 0 || !strings.Contains(res.stderr, "CAP_NET_ADMIN") || !strings.Contains(res.stderr, "AmbientCapabilities=CAP_NET_ADMIN") {
			t.Errorf("%s as nobody: want a failed start that says to grant CAP_NET_ADMIN; got %v", strings.TrimSpace(extra), res)
		}
	}
	write("")
	p := startProc(t, asNobody, sluiceBin, "-c", path)
	p.wait("listening", isMsg("listening"))
	p.allowErrors("the test reloads a config whose source needs a capability sluice lacks")
	write("source = \"client\"\n")
	p.signal(syscall.SIGHUP)
	rec := p.wait("the refused reload", func(r record) bool {
		return strings.Contains(r.str("msg"), "reload") && strings.Contains(r.String(), "CAP_NET_ADMIN")
	})
	t.Logf("the refusal: %s", rec)
	if !p.running() {
		t.Fatal("sluice exited after a refused reload")
	}
}
