package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// congestionConfig is a one-rule config with congestion_control set.
func congestionConfig(backend, setting string) func(listen string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "web"
listen = %q
backends = [%q]
congestion_control = %q
`, listen, backend, setting)
	}
}

// socketAlgorithm asks ss for the congestion control of the established
// TCP socket from local to peer (both host:port).
func socketAlgorithm(t *testing.T, local, peer string) string {
	t.Helper()
	out, err := exec.Command("ss", "-Htin", "state", "established", "src", local, "dst", peer).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	for _, algo := range []string{"reno", "cubic", "bbr"} {
		if strings.Contains(" "+strings.Join(strings.Fields(string(out)), " ")+" ", " "+algo+" ") {
			return algo
		}
	}
	t.Fatalf("ss shows no known algorithm for %s -> %s:\n%s", local, peer, out)
	return ""
}

// TestCongestionControl: a rule's congestion_control is applied to both of
// sluice's sockets of a connection, the client's and the backend's.
func TestCongestionControl(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) is not installed")
	}
	be := startBackend(t, echo)
	p, addr := launchConfig(t, congestionConfig(be.addr, "reno"))
	defer p.stop()
	c := dial(t, addr)
	defer c.Close()
	if err := roundTrip(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	// sluice's side of the client connection: from the listen address to
	// the client.
	if got := socketAlgorithm(t, addr, c.LocalAddr().String()); got != "reno" {
		t.Errorf("client-side socket uses %s, want reno", got)
	}
	// sluice's side of the backend connection: to the backend, from any
	// port of sluice's; only this connection is open to the backend.
	out, err := exec.Command("ss", "-Htin", "state", "established", "dst", be.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	if !strings.Contains(string(out), " reno ") {
		t.Errorf("backend-side socket is not reno:\n%s", out)
	}
}

// TestCongestionControlUnknown: an algorithm the kernel lacks stops sluice
// at start with the rule and the algorithms it could have used.
func TestCongestionControlUnknown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	path := writeConfig(t, congestionConfig("127.0.0.1:9", "nosuchcc")(listen))
	r := runSluice(t, nil, "-c", path)
	want := `rule "web": congestion_control "nosuchcc": this kernel has no such algorithm (available: `
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("got %v\nwant exit 1 and %q", r, want)
	}
}

// TestCongestionControlAutoWildcard: under "auto", a listener on every
// address gives a loopback client's socket cubic one connection at a time
// (the listener itself keeps the system's algorithm for remote clients).
func TestCongestionControlAutoWildcard(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) is not installed")
	}
	be := startBackend(t, echo)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	listen := "0.0.0.0:" + port
	path := writeConfig(t, congestionConfig(be.addr, "auto")(listen))
	p := startProc(t, nil, sluiceBin, "-c", path)
	defer p.stop()
	if !p.waitListening(listen) {
		t.Fatalf("sluice did not start: %s", p.stderr())
	}
	c := dial(t, "127.0.0.1:"+port)
	defer c.Close()
	if err := roundTrip(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got := socketAlgorithm(t, "127.0.0.1:"+port, c.LocalAddr().String()); got != "cubic" {
		t.Errorf("client-side socket of a loopback client uses %s, want cubic", got)
	}
}

// TestCongestionControlReload: a reload that changes congestion_control
// applies to connections accepted afterwards, also when the listening
// socket had passed the old algorithm on.
func TestCongestionControlReload(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) is not installed")
	}
	be := startBackend(t, echo)
	var path string
	p, addr := launch(t, sluiceBin, func(listen string) []string {
		path = writeConfig(t, congestionConfig(be.addr, "reno")(listen))
		return []string{"-c", path}
	})
	defer p.stop()
	check := func(want string) {
		t.Helper()
		c := dial(t, addr)
		defer c.Close()
		if err := roundTrip(c, "hello\n"); err != nil {
			t.Fatal(err)
		}
		if got := socketAlgorithm(t, addr, c.LocalAddr().String()); got != want {
			t.Errorf("client-side socket uses %s, want %s", got, want)
		}
	}
	check("reno")
	rewriteFile(t, path, congestionConfig(be.addr, "cubic")(addr))
	p.signal(syscall.SIGHUP)
	_, from := p.waitFrom(0, "reloaded", isMsg("reloaded"))
	check("cubic")
	rewriteFile(t, path, congestionConfig(be.addr, "reno")(addr))
	p.signal(syscall.SIGHUP)
	_, from = p.waitFrom(from, "reloaded", isMsg("reloaded"))
	check("reno")
	// "system" after a named algorithm: the listening socket must stop
	// passing reno on.
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		t.Skip("no congestion control sysctl:", err)
	}
	system := strings.TrimSpace(string(b))
	if system == "reno" {
		t.Skip("the system's algorithm is reno: nothing left to tell apart")
	}
	rewriteFile(t, path, congestionConfig(be.addr, "system")(addr))
	p.signal(syscall.SIGHUP)
	p.waitFrom(from, "reloaded", isMsg("reloaded"))
	check(system)
}

// TestCongestionControlAutoUnprivileged: a process that may not choose
// cubic (not in net.ipv4.tcp_allowed_congestion_control, no
// CAP_NET_ADMIN) says so once at start under "auto", and its loopback
// connections keep the system's algorithm instead of failing to set cubic
// on each.
func TestCongestionControlAutoUnprivileged(t *testing.T) {
	t.Parallel()
	needRoot(t, "to run sluice as another, unprivileged uid", "ss")
	allowed, err := os.ReadFile("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
	if err != nil || slices.Contains(strings.Fields(string(allowed)), "cubic") {
		t.Skipf("unprivileged processes may choose cubic here (allowed: %q, %v)", allowed, err)
	}
	system, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil || strings.TrimSpace(string(system)) == "cubic" {
		t.Skip("the system's algorithm is cubic: nothing to tell apart")
	}
	be := startBackend(t, echo)
	listen := freeAddr(t)
	p := startProc(t, asNobody, sluiceBin, "-l", listen, "-r", be.addr, "--log-format", "json")
	defer p.stop()
	if !p.waitListening(listen) {
		t.Fatalf("sluice did not start: %s", p.stderr())
	}
	p.wait("the warning", func(r record) bool {
		return strings.HasPrefix(r.str("msg"), "congestion_control auto: connections to loopback keep the system's algorithm")
	})
	c := dial(t, listen)
	defer c.Close()
	if err := roundTrip(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(system))
	if got := socketAlgorithm(t, listen, c.LocalAddr().String()); got != want {
		t.Errorf("client-side socket uses %s, want the system's %s", got, want)
	}
}

// TestCongestionControlNotAllowed: a named algorithm this unprivileged
// process may not choose stops sluice at start, naming the ones it may.
func TestCongestionControlNotAllowed(t *testing.T) {
	t.Parallel()
	needRoot(t, "to run sluice as another, unprivileged uid")
	allowed, err := os.ReadFile("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
	available, err2 := os.ReadFile("/proc/sys/net/ipv4/tcp_available_congestion_control")
	if err != nil || err2 != nil {
		t.Skip("no congestion control sysctls")
	}
	var name string
	for _, a := range strings.Fields(string(available)) {
		if !slices.Contains(strings.Fields(string(allowed)), a) {
			name = a
			break
		}
	}
	if name == "" {
		t.Skip("every available algorithm is allowed to unprivileged processes here")
	}
	r := runSluice(t, asNobody, "-l", freeAddr(t), "-r", "127.0.0.1:9", "--congestion-control", name)
	want := fmt.Sprintf(`congestion_control %q: this process may not choose it (allowed: %s;`, name, strings.Join(strings.Fields(string(allowed)), ", "))
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("got %v\nwant exit 1 and %q", r, want)
	}
}
