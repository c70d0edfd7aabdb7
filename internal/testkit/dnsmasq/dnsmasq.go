// Package dnsmasq runs a real DNS server for tests: dnsmasq on a loopback
// port, answering only the records a test gives it.
package dnsmasq

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"sync"
	"testing"
	"time"
)

// Server is a running dnsmasq.
type Server struct {
	Addr netip.AddrPort // where it answers, UDP and TCP
	cmd  *exec.Cmd
	mu   sync.Mutex // guards out
	out  bytes.Buffer
	done chan struct{}
}

// Need skips the test when dnsmasq is not installed, unless CI is set:
// .ci/run installs it, so there its absence is a failure.
func Need(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("dnsmasq")
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/dnsmasq")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dnsmasq is not installed, and CI is set: .ci/run installs dnsmasq")
		}
		t.Skip("dnsmasq is not installed (apt-get install dnsmasq); CI would run this test")
	}
	return path
}

// Start runs dnsmasq on a free loopback port with the given options
// (such as "--srv-host=_web._tcp.example.test,a.example.test,8080,1,10"
// or "--host-record=a.example.test,127.0.0.2"), forwarding nothing, and
// waits until it answers. Names under .test are its own: one it has no
// record of does not exist (NXDOMAIN); others are refused. It is stopped
// when the test ends.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	path := Need(t)
	port := freePort(t)
	args := []string{"--no-daemon", "--port=" + port, "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=", "--log-facility=-",
		"--local=/test/", "--host-record=" + readyName + ",127.0.0.1"}
	if u, err := user.Current(); err == nil {
		args = append(args, "--user="+u.Username) // stay who we are
	}
	s := &Server{Addr: netip.MustParseAddrPort("127.0.0.1:" + port), done: make(chan struct{})}
	s.cmd = exec.Command(path, append(args, records...)...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	s.waitReady(t)
	return s
}

// Write keeps dnsmasq's output, for a failing test's message.
func (s *Server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

// output returns what dnsmasq wrote.
func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Stop ends dnsmasq and waits for it; again, it does nothing.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Resolver returns a resolver that asks only this server.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr.String())
	}}
}

// readyName is the name waitReady asks for.
const readyName = "ready.sluice.test"

// waitReady waits until the server answers a query.
func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := s.Resolver().LookupHost(ctx, readyName)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("dnsmasq exited: %s", s.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq did not answer within 10s: %v\n%s", err, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback port free for both UDP and TCP just now.
func freePort(t testing.TB) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return ""
}
