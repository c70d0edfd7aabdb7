package server

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/testkit/loopback"
)

// peerServer is a backend that tells each client the address it sees it
// come from, and closes.
func peerServer(t *testing.T) string {
	return loopback.Serve(t, func(c net.Conn) {
		fmt.Fprintln(c, c.RemoteAddr().(*net.TCPAddr).IP)
	})
}

// peerSeen connects through sluice at addr, sending first, and returns
// the peer address the backend saw.
func peerSeen(t *testing.T, addr, first string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(first))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("through %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

// TestSourceGoesToPools: a rule's source and mark reach its pool, and a
// route's own reach the route's; connections come from the source each
// sets, and a reload that changes the source takes effect for new
// connections.
func TestSourceGoesToPools(t *testing.T) {
	rule, routed := peerServer(t), peerServer(t)
	listen := freeAddr(t)
	doc := func(src string) string {
		return ruleTOML("web", listen, rule) + fmt.Sprintf("source = %q\npeek_timeout = \"100ms\"\n", src) +
			fmt.Sprintf("[[rule.route]]\ndetect = \"http\"\nbackends = [%q]\nsource = \"127.0.0.4\"\n", routed)
	}
	s := startServer(t, parse(t, doc("127.0.0.2")))
	if got := peerSeen(t, listen, ""); got != "127.0.0.2" {
		t.Errorf("the rule's backend saw %s, want 127.0.0.2", got)
	}
	if got := peerSeen(t, listen, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got != "127.0.0.4" {
		t.Errorf("the route's backend saw %s, want 127.0.0.4", got)
	}
	if _, err := s.Reload(parse(t, doc("127.0.0.3"))); err != nil {
		t.Fatal(err)
	}
	if got := peerSeen(t, listen, ""); got != "127.0.0.3" {
		t.Errorf("after the reload the rule's backend saw %s, want 127.0.0.3", got)
	}
}

// TestSourceClientFromProxyHeader: with source = "client", the client a
// trusted sender's PROXY header names is the address sluice connects to
// the backend from.
func TestSourceClientFromProxyHeader(t *testing.T) {
	if backend.CheckOrigin(backend.Source{Client: true}, 0) != nil {
		t.Skip("source = \"client\" needs CAP_NET_ADMIN, which this test process lacks")
	}
	listen := freeAddr(t)
	startServer(t, parse(t, ruleTOML("web", listen, peerServer(t))+
		"source = \"client\"\naccept_proxy_protocol = [\"127.0.0.1/32\"]\n"))
	if got := peerSeen(t, listen, "PROXY TCP4 127.0.0.5 127.0.0.1 40000 80\r\n"); got != "127.0.0.5" {
		t.Errorf("the backend saw %s, want the client the PROXY header names, 127.0.0.5", got)
	}
}
