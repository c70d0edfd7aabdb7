package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadSwapsListenAddresses: a reload that swaps the listen addresses
// of two rules applies (each takes the other's socket over), and from then
// on each address reaches the other rule's backend.
func TestReloadSwapsListenAddresses(t *testing.T) {
	t.Parallel()
	named := func(name string) func(*net.TCPConn) {
		return func(c *net.TCPConn) { c.Write([]byte(name + "\n")) }
	}
	alpha, beta := startBackend(t, named("alpha")), startBackend(t, named("beta"))
	config := func(alphaListen, betaListen string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"alpha\"\nlisten = %q\nbackends = [%q]\n\n[[rule]]\nname = \"beta\"\nlisten = %q\nbackends = [%q]\n",
			alphaListen, alpha.addr, betaListen, beta.addr)
	}
	p, addrs, path := launchOps(t, 2, func(addrs []string) string { return config(addrs[0], addrs[1]) }, nil)
	served := func(addr string) string {
		t.Helper()
		c := dial(t, addr)
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("through %s: %v", addr, err)
		}
		return strings.TrimSpace(line)
	}
	swapRules(t, p, path, config, served, addrs[0], addrs[1], 0)
}

// swapRules checks that addrA reaches rule alpha and addrB rule beta,
// rewrites the config file at path with their addresses swapped, reloads
// (the outcome is looked for from log index from on), and waits until each
// address reaches the other rule.
func swapRules(t *testing.T, p *proc, path string, config func(alpha, beta string) string, served func(addr string) string, addrA, addrB string, from int) {
	t.Helper()
	if a, b := served(addrA), served(addrB); a != "alpha" || b != "beta" {
		t.Fatalf("before the swap: %s and %s, want alpha and beta", a, b)
	}
	rewriteFile(t, path, config(addrB, addrA))
	if rec, _ := reloadOutcome(p, from); rec.str("msg") != "reloaded" {
		t.Fatalf("swap rejected: %v", rec)
	}
	waitSwapped(t, served, addrA, addrB)
}

// reloadOutcome sends p SIGHUP and returns the first reload outcome logged
// at index from or later, with the index after it.
func reloadOutcome(p *proc, from int) (record, int) {
	p.t.Helper()
	p.signal(syscall.SIGHUP)
	return p.waitFrom(from, "the reload's outcome", func(r record) bool {
		return r.str("msg") == "reloaded" || strings.HasPrefix(r.str("msg"), "reload rejected")
	})
}

// waitSwapped waits until addrA is served by rule beta and addrB by alpha
// (served names the rule a new client reaches). The old holders stop taking
// clients as the reload applies; one taken just before still reaches the
// old rule.
func waitSwapped(t *testing.T, served func(addr string) string, addrA, addrB string) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(10 * time.Millisecond) {
		a, b := served(addrA), served(addrB)
		if a == "beta" && b == "alpha" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the swap: %s and %s, want beta and alpha", a, b)
		}
	}
}

// TestReloadSwapsUnixListenPaths: the same swap with unix socket paths.
// Each rule takes the other's socket over; the rule giving a path up leaves
// it in place (its listener would remove it on closing), and at the end
// the rules holding the paths remove both.
func TestReloadSwapsUnixListenPaths(t *testing.T) {
	t.Parallel()
	named := func(name string) func(*net.TCPConn) {
		return func(c *net.TCPConn) { c.Write([]byte(name + "\n")) }
	}
	alpha, beta := startBackend(t, named("alpha")), startBackend(t, named("beta"))
	dir := shortTempDir(t)
	pathA, pathB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	config := func(alphaListen, betaListen string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"alpha\"\nlisten = \"unix:%s\"\nbackends = [%q]\n\n[[rule]]\nname = \"beta\"\nlisten = \"unix:%s\"\nbackends = [%q]\n",
			alphaListen, alpha.addr, betaListen, beta.addr)
	}
	cfg := writeConfig(t, config(pathA, pathB))
	p := startProc(t, nil, sluiceBin, "-c", cfg)
	if !p.waitOrExit(isMsg("started")) {
		t.Fatalf("sluice did not start: %v\n%s", p.err, p.stderr())
	}
	p.allowErrors("the test reloads a config whose new rule cannot bind, which sluice rejects")
	served := func(path string) string {
		t.Helper()
		c, err := net.DialTimeout("unix", path, waitLimit)
		if err != nil {
			t.Fatalf("dial unix:%s: %v", path, err)
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("through unix:%s: %v", path, err)
		}
		return strings.TrimSpace(line)
	}
	// A swap that fails on another rule's bind (the TCP address is the
	// backend's) is undone: each path still reaches its first rule, as
	// swapRules checks before the swap that applies.
	rewriteFile(t, cfg, config(pathB, pathA)+fmt.Sprintf("\n[[rule]]\nname = \"gamma\"\nlisten = %q\nbackends = [%q]\n", alpha.addr, beta.addr))
	rec, next := reloadOutcome(p, 0)
	if !strings.HasPrefix(rec.str("msg"), "reload rejected") || !strings.Contains(rec.str("error"), "gamma") {
		t.Fatalf("a reload binding the backend's address: %v, want it rejected for rule gamma", rec)
	}
	swapRules(t, p, cfg, config, served, pathA, pathB, next)

	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("exit %d after SIGTERM: %v", code, err)
	}
	for _, path := range []string{pathA, pathB} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unix:%s after sluice exited: %v, want it removed", path, err)
		}
	}
}

// TestReloadSwapsUDPListenAddresses: the same swap with two UDP rules; each
// address then reaches the other rule's backend.
func TestReloadSwapsUDPListenAddresses(t *testing.T) {
	t.Parallel()
	alpha, beta := startUDPNamed(t, "alpha"), startUDPNamed(t, "beta")
	config := func(alphaListen, betaListen string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"alpha\"\nprotocol = \"udp\"\nlisten = %q\nbackends = [%q]\n\n[[rule]]\nname = \"beta\"\nprotocol = \"udp\"\nlisten = %q\nbackends = [%q]\n",
			alphaListen, alpha, betaListen, beta)
	}
	p, addrs, path := launchOps(t, 2, func(addrs []string) string { return config(addrs[0], addrs[1]) }, nil)
	served := func(addr string) string {
		t.Helper()
		name, err := udpAsk(udpClient(t), addr)
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	swapRules(t, p, path, config, served, addrs[0], addrs[1], 0)
	for range 16 { // new client ports, hashed over both sockets of each group
		if a, b := served(addrs[0]), served(addrs[1]); a != "beta" || b != "alpha" {
			t.Fatalf("after the swap: %s and %s, want beta and alpha", a, b)
		}
	}
	if n := p.count(isMsg("udp sockets kept: workers applies when the address is bound anew")); n != 0 {
		t.Errorf("a rule took over %d groups smaller than its workers: a socket stayed behind", n)
	}
}

// startUDPNamed serves UDP on a loopback port until the test ends,
// answering every datagram with its name, and returns its address.
func startUDPNamed(t *testing.T, name string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort([]byte(name), from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c.LocalAddr().String()
}

// udpAsk sends a datagram from c to addr and returns the first answer,
// sending again (up to 8 times, 500 ms apart) when none comes: loopback
// drops datagrams when the machine is flooded.
func udpAsk(c *net.UDPConn, addr string) (string, error) {
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	for range 8 {
		if _, err := c.WriteToUDP([]byte("?"), to); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("%s: no answer from %s", c.LocalAddr(), addr)
}
