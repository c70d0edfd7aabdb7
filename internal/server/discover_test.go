package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"sluice/internal/discovery"
	"sluice/internal/testkit/dnsmasq"
	"sluice/internal/testkit/loopback"
)

// keyStore is an in-memory key-value store that a Follower reads: what
// the etcd client gives sluice, without etcd.
type keyStore struct {
	sets chan []discovery.Entry
}

// follow hands every set put in the store to set, until ctx ends.
func (k *keyStore) follow(ctx context.Context, _ string, set func([]discovery.Entry)) {
	for {
		select {
		case <-ctx.Done():
			return
		case es := <-k.sets:
			set(es)
		}
	}
}

// waitDiscovered bounds the waits of these tests: a passively downed
// backend gets its trial after 5s.
const waitDiscovered = 20 * time.Second

// waitAnswer waits until a connection through addr is answered by the
// backend named want.
func waitAnswer(t *testing.T, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(waitDiscovered)
	last := ""
	for time.Now().Before(deadline) {
		last = askOnce(addr)
		if strings.HasPrefix(last, want+" ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no answer from %s through %s within %v (last: %q)", want, addr, waitDiscovered, last)
}

// askOnce asks once through addr; "" when nothing answers.
func askOnce(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "hi")
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// serveAt runs an echoServer named name on the address addr.
func serveAt(t *testing.T, addr, name string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	loopback.ServeOn(t, ln, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s %s\n", name, sc.Text())
		}
	})
}

// TestDiscoveredFromKeys: a rule with only backends_from "etcd:" serves
// the backends its keys name, follows their changes, and keeps them across
// a reload that builds its pool anew.
func TestDiscoveredFromKeys(t *testing.T) {
	store := &keyStore{sets: make(chan []discovery.Entry)}
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Follow: store.follow})
	t.Cleanup(s.Shutdown)
	a, b := echoServer(t, "a"), echoServer(t, "b")
	listen := freeAddr(t)
	text := fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\nbackends_from = \"etcd:/services/web/\"\n", listen)
	if err := s.Start(parse(t, text)); err != nil {
		t.Fatal(err)
	}
	if got := askOnce(listen); got != "" {
		t.Fatalf("answered %q with no backend discovered", got)
	}
	store.sets <- []discovery.Entry{{Key: "/services/web/a", Value: []byte(a), Revision: 2}}
	waitAnswer(t, listen, "a")
	if _, err := s.Reload(parse(t, text+"connect_timeout = \"2s\"\n")); err != nil {
		t.Fatal(err)
	}
	if got := askOnce(listen); !strings.HasPrefix(got, "a ") {
		t.Fatalf("right after the reload: %q, want backend a", got)
	}
	store.sets <- []discovery.Entry{{Key: "/services/web/b", Value: []byte(b), Revision: 3}}
	waitAnswer(t, listen, "b")
}

// TestEtcdDiscoveryNeedsEtcd: without a Follower (sluice without --etcd)
// a rule with backends_from "etcd:" does not start, and says why.
func TestEtcdDiscoveryNeedsEtcd(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(s.Shutdown)
	err := s.Start(parse(t, fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\nbackends_from = \"etcd:/services/web/\"\n", freeAddr(t))))
	if err == nil || !strings.Contains(err.Error(), `rule "web": backends_from "etcd:/services/web/": sluice is not connected to etcd`) {
		t.Fatalf("Start: %v", err)
	}
}

// TestDiscoveredFromSRV: a routed rule's route takes its backends from
// SRV records of a real DNS server: the priority-2 target only while the
// priority-1 one refuses.
func TestDiscoveredFromSRV(t *testing.T) {
	primary, backup := freeAddrs(t, 2)[0], echoServer(t, "backup")
	pport, bport := primary[strings.LastIndex(primary, ":")+1:], backup[strings.LastIndex(backup, ":")+1:]
	dns := dnsmasq.Start(t, "--srv-host=_web._tcp.example.test,p.example.test,"+pport+",1,10",
		"--srv-host=_web._tcp.example.test,b.example.test,"+bport+",2,10",
		"--host-record=p.example.test,127.0.0.1", "--host-record=b.example.test,127.0.0.1")
	listen := freeAddr(t)
	startServer(t, parse(t, fmt.Sprintf("[[rule]]\nname = \"web\"\nlisten = %q\nbackends_from = \"srv:_web._tcp.example.test@%s\"\n", listen, dns.Addr)))
	waitAnswer(t, listen, "backup")
	serveAt(t, primary, "primary")
	waitAnswer(t, listen, "primary")
	for range 5 {
		if got := askOnce(listen); !strings.HasPrefix(got, "primary ") {
			t.Fatalf("with the primary up: %q", got)
		}
	}
}
