package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// rangeSize is the length of the ranges the end-to-end tests forward.
const rangeSize = 1000

// loopbackAddr is 127.0.0.1:port.
func loopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// portRangeBackends serves each of n consecutive loopback ports over TCP
// and UDP: a TCP connection is sent "<port>\n" and closed once the client
// closes it, a datagram is answered with "<port> " and its bytes. It
// returns the first port.
func portRangeBackends(t *testing.T, n int) int {
	t.Helper()
	base := loopback.PortRange(t, n, func(port uint16) (io.Closer, error) {
		ln, err := net.Listen("tcp", loopbackAddr(int(port)))
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenPacket("udp", loopbackAddr(int(port)))
		if err != nil {
			ln.Close()
			return nil, err
		}
		go servePort(ln, int(port))
		go echoPort(pc, int(port))
		return closers{ln, pc}, nil
	})
	return int(base)
}

// servePort sends each connection ln accepts its port, then waits for the
// client to close.
func servePort(ln net.Listener, port int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%d\n", port)
			io.Copy(io.Discard, c)
		}()
	}
}

// echoPort answers each datagram on pc with its port and the datagram.
func echoPort(pc net.PacketConn, port int) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(append([]byte(strconv.Itoa(port)+" "), buf[:n]...), from)
	}
}

// closers closes each of its members.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// askPort connects to addr and returns the port number the backend sent,
// and the client's local address.
func askPort(addr string) (int, net.Addr, error) {
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", addr, err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	return port, c.LocalAddr(), err
}

// askUDPPort sends a datagram from c to addr and returns the port of the
// backend that echoed it. The reply must come from addr: from the port the
// client sent to. A lost datagram is sent again.
func askUDPPort(c *net.UDPConn, addr string) (int, error) {
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return 0, err
	}
	msg := []byte("hello " + addr)
	buf := make([]byte, 2048)
	for range 10 {
		if _, err := c.WriteToUDP(msg, to); err != nil {
			return 0, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if from.Port() != uint16(to.Port) {
			return 0, fmt.Errorf("reply from %v, want from %v", from, to)
		}
		port, rest, _ := strings.Cut(string(buf[:n]), " ")
		if rest != string(msg) {
			return 0, fmt.Errorf("reply %q to %q", buf[:n], msg)
		}
		return strconv.Atoi(port)
	}
	return 0, fmt.Errorf("no reply from %s", addr)
}

// eachPort runs f for each of n ports from 0, a few at a time (on
// workers w from 0 to 15), and returns the errors.
func eachPort(n int, f func(w, i int) error) []error {
	var mu sync.Mutex
	var errs []error
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(w, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// rangeRule is a rule forwarding the listen range to the backend range,
// both of n ports.
func rangeRule(name, proto string, listen, backend, n int) string {
	return fmt.Sprintf("[[rule]]\nname = %q\nprotocol = %q\nlisten = \"127.0.0.1:%d-%d\"\nbackends = [\"127.0.0.1:%d-%d\"]\nworkers = 1\ndrain_timeout = \"2s\"\n",
		name, proto, listen, listen+n-1, backend, backend+n-1)
}

// startRange runs sluice with the rules that rules returns for a free run
// of ports (the first given), and waits until it listens.
func startRange(t *testing.T, n int, rules func(listen int) string) (*proc, int, string) {
	t.Helper()
	for range 5 {
		listen := int(loopback.FreePorts(t, n))
		path := writeConfig(t, "log_format = \"json\"\n"+rules(listen))
		p := startProc(t, nil, sluiceBin, "-c", path)
		if _, ok := p.scanFrom(0, isMsg("listening"), false); ok {
			return p, listen, path
		}
		if !strings.Contains(p.stderr(), "address already in use") {
			t.Fatalf("sluice did not start: %v\n%s", p.err, p.stderr())
		}
	}
	t.Fatal("no free run of ports for sluice in 5 tries")
	return nil, 0, ""
}

// TestPortRangeEndToEnd forwards a 1,000-port TCP range and a 1,000-port
// UDP range: every port reaches the same port of the backend's range, UDP
// replies leave from the port the client sent to, and access lines name
// the port the client came in on.
func TestPortRangeEndToEnd(t *testing.T) {
	raiseFDLimit(t, 20000)
	back := portRangeBackends(t, rangeSize)
	p, listen, _ := startRange(t, rangeSize, func(listen int) string {
		return rangeRule("r", "tcp+udp", listen, back, rangeSize)
	})
	p.waitN(2, "listening (tcp and udp)", isMsg("listening"))

	locals := make([]net.Addr, rangeSize)
	for _, err := range eachPort(rangeSize, func(_, i int) error {
		port, local, err := askPort(loopbackAddr(listen + i))
		if err == nil && port != back+i {
			err = fmt.Errorf("TCP port %d reached backend port %d, want %d", listen+i, port, back+i)
		}
		locals[i] = local
		return err
	}) {
		t.Error(err)
	}
	clients := make([]*net.UDPConn, 16)
	for i := range clients {
		clients[i] = udpClient(t)
	}
	for _, err := range eachPort(rangeSize, func(w, i int) error {
		port, err := askUDPPort(clients[w], loopbackAddr(listen+i))
		if err == nil && port != back+i {
			err = fmt.Errorf("UDP port %d reached backend port %d, want %d", listen+i, port, back+i)
		}
		return err
	}) {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for _, i := range []int{0, 499, rangeSize - 1} {
		port := int64(listen + i)
		rec := p.wait("access line of port "+strconv.Itoa(listen+i), func(r record) bool {
			return accessOf(locals[i])(r) && r.num("listen") == port // the client's port may serve twice
		})
		if rec.num("listen") != int64(listen+i) || rec.str("backend") != fmt.Sprintf("127.0.0.1:%d-%d", back, back+rangeSize-1) {
			t.Errorf("access line of a client of port %d: %v", listen+i, rec)
		}
	}
}

// TestPortRangeReloadUnderLoad grows, shrinks and shifts a TCP range by
// SIGHUP while clients connect in a loop to the ports every step keeps:
// none of their connects fails, every new port carries data to the right
// backend port, and the ports left out stop accepting.
func TestPortRangeReloadUnderLoad(t *testing.T) {
	raiseFDLimit(t, 20000)
	const span = 300
	back := portRangeBackends(t, span)
	type step struct{ from, n int } // the listen range, as offsets in the span
	steps := []step{{100, 100}, {50, 200}, {100, 50}, {120, 50}}
	cfg := func(listen int, s step) string {
		return "log_format = \"json\"\n" + rangeRule("r", "tcp", listen+s.from, back, s.n)
	}
	p, listen, path := startRange(t, span, func(listen int) string { return cfg(listen, steps[0])[len("log_format = \"json\"\n"):] })

	kept := [2]int{120, 150} // in every step's range
	var stop atomic.Bool
	var connects, failures atomic.Int64
	var failed sync.Map
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				port := listen + kept[0] + rand.IntN(kept[1]-kept[0])
				connects.Add(1)
				if _, _, err := askPort(loopbackAddr(port)); err != nil {
					failures.Add(1)
					failed.Store(port, err.Error())
				}
			}
		}()
	}
	from := 0
	for _, s := range steps[1:] {
		waitConnects(t, &connects, connects.Load()+50)
		rewriteFile(t, path, cfg(listen, s))
		p.signal(syscall.SIGHUP)
		_, from = p.waitFrom(from, "reloaded", isMsg("reloaded"))
		checkRangeStep(t, listen, back, span, s.from, s.n)
	}
	waitConnects(t, &connects, connects.Load()+50)
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		failed.Range(func(k, v any) bool { t.Errorf("port %v: %v", k, v); return true })
		t.Fatalf("%d of %d connects to kept ports failed across the reloads", failures.Load(), connects.Load())
	}
	t.Logf("%d connects to kept ports across 3 reloads, none failed", connects.Load())
}

// waitConnects waits (bounded) until the load has made n connects.
func waitConnects(t *testing.T, connects *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for connects.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connects within %v, want %d", connects.Load(), waitLimit, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkRangeStep checks that listen+from to listen+from+n-1 reach the
// backend ports from back on, and that the other ports of the span refuse.
func checkRangeStep(t *testing.T, listen, back, span, from, n int) {
	t.Helper()
	for _, err := range eachPort(span, func(_, i int) error {
		port, _, err := askPort(loopbackAddr(listen + i))
		in := i >= from && i < from+n
		switch {
		case in && err != nil:
			return err
		case in && port != back+i-from:
			return fmt.Errorf("port %d reached backend port %d, want %d", listen+i, port, back+i-from)
		case !in && err == nil:
			return fmt.Errorf("port %d, outside the range %d-%d, accepts", listen+i, listen+from, listen+from+n-1)
		}
		return nil
	}) {
		t.Error(err)
	}
}

// TestCheckPortRange: `sluice check` prints a range as written and says how
// many descriptors the listening ports hold against the limit, warning
// when they do not fit; quick mode takes a range too.
func TestCheckPortRange(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "[[rule]]\nname = \"game\"\nlisten = \"0.0.0.0:20000-20999\"\nprotocol = \"tcp+udp\"\nworkers = 1\n"+
		"backends = [\"10.0.0.5:30000-30999\", \"10.0.0.6:7000\"]\nhealth_check = { port = 8080 }\n")
	res := runSluice(t, nil, "check", "-c", path)
	if res.code != 0 || !strings.Contains(res.stdout, `listen = "0.0.0.0:20000-20999"`) || !strings.Contains(res.stdout, `"10.0.0.5:30000-30999"`) ||
		!strings.Contains(res.stdout, "port = 8080") {
		t.Fatalf("check of a range: %v", res)
	}
	if !strings.Contains(res.stdout, "\n# 1000 TCP and 1000 UDP listening ports hold 2002 file descriptors") || strings.Contains(res.stderr, "warning") {
		t.Errorf("check's descriptor comment: %v", res)
	}
	low := runSluice(t, func(cmd *exec.Cmd) {
		cmd.Args = []string{"sh", "-c", `ulimit -n 2000 && exec "$0" "$@"`, sluiceBin, "check", "-c", path}
		cmd.Path = "/bin/sh"
	})
	if low.code != 0 || !strings.Contains(low.stderr, "warning: the listening sockets need 2066 file descriptors, more than the limit of 2000") {
		t.Errorf("check under a limit of 2000: %v", low)
	}
	bad := runSluice(t, nil, "-l", "127.0.0.1:20000-20009", "-r", "127.0.0.1:30000-30008")
	if bad.code == 0 || !strings.Contains(bad.stderr, `a range of 9 ports, but listen "127.0.0.1:20000-20009" has 10`) {
		t.Errorf("quick mode with ranges of two lengths: %v", bad)
	}
}

// TestPortRangeUpgrade: a hitless upgrade (SIGUSR2) hands over the socket
// of every port of a tcp+udp range, and the new process serves every port,
// mapped as before, binding none anew (the old one still holds them).
func TestPortRangeUpgrade(t *testing.T) {
	const n = 50
	back := portRangeBackends(t, n)
	listen := int(loopback.FreePorts(t, n))
	g := startGroup(t, "-c", writeConfig(t, "log_format = \"json\"\n"+rangeRule("r", "tcp+udp", listen, back, n)))
	started := g.wait("started", isMsg("started"))
	pid := upgrade(t, g, int(started.num("pid")), 1)
	client := udpClient(t)
	for i := range n {
		if port, _, err := askPort(loopbackAddr(listen + i)); err != nil || port != back+i {
			t.Errorf("TCP port %d after the upgrade: backend port %d, %v; want %d", listen+i, port, err, back+i)
		}
		if port, err := askUDPPort(client, loopbackAddr(listen+i)); err != nil || port != back+i {
			t.Errorf("UDP port %d after the upgrade: backend port %d, %v; want %d", listen+i, port, err, back+i)
		}
	}
	if unused := g.find(isMsg("inherited socket not used by any rule: closing")); len(unused) > 0 {
		t.Errorf("the new process left inherited sockets unused: %v", unused)
	}
	stopUpgraded(t, g, pid, 2)
}
