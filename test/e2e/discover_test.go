package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/dnsmasq"
	"sluice/internal/testkit/loopback"
)

// etcdctl runs etcdctl against the cluster and returns its output.
func (c *etcdCluster) etcdctl(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("etcdctl", append([]string{"--endpoints", c.endpoints(), "--command-timeout", "5s"}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// register writes key = value under a lease of ttl seconds, kept alive by
// an etcdctl process until the returned function stops it.
func (c *etcdCluster) register(key, value string, ttl int) (stop func()) {
	c.t.Helper()
	var id string
	fmt.Sscanf(c.etcdctl("lease", "grant", fmt.Sprint(ttl)), "lease %s granted", &id)
	c.etcdctl("put", "--lease="+id, key, value)
	keep := exec.Command("etcdctl", "--endpoints", c.endpoints(), "lease", "keep-alive", id)
	if err := keep.Start(); err != nil {
		c.t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = keep.Process.Kill()
			_ = keep.Wait()
		}
	}
	c.t.Cleanup(stop)
	return stop
}

// ruleBackends returns the addresses and weights of rule web's backends
// that n's API lists; ok is false while it does not answer.
func (n *fleetNode) ruleBackends() (map[string]int, bool) {
	resp, err := http.Get("http://" + n.admin + "/api/v1/rules/web/backends")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var body struct {
		Backends []struct {
			Address string `json:"address"`
			Weight  int    `json:"weight"`
		} `json:"backends"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil, false
	}
	out := map[string]int{}
	for _, b := range body.Backends {
		out[b.Address] = b.Weight
	}
	return out, true
}

// TestFleetDiscoveredBackends: backends registered under an etcd prefix
// with a lease join every instance's pool (a JSON value's weight
// honoured) and serve; one that stops renewing its 2 s lease is gone from
// every instance within the lease + 1 s; a new registration appears.
func TestFleetDiscoveredBackends(t *testing.T) {
	c := startEtcd(t, 3)
	a, b := namedBackend(t, "A"), namedBackend(t, "B")
	conf := "log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = \"unix:front.sock\"\nbackends_from = \"etcd:/services/web/\"\n"
	rev := pushedRevision(t, push(t, c, filepath.Join(t.TempDir(), "state.json"), conf))
	nodes := []*fleetNode{startNode(t, c, "n1"), startNode(t, c, "n2")}
	waitSeen(t, rev, nodes...)
	for _, n := range nodes {
		if got, err := n.greeting(); err == nil {
			t.Fatalf("%s: greeting %q with no backend registered", n.name, got)
		}
		n.p.allowErrors("no backend registered yet")
	}
	stopA := c.register("/services/web/a", a, 2)
	c.etcdctl("put", "/services/web/b", fmt.Sprintf(`{"address": %q, "weight": 3}`, b))
	c.etcdctl("put", "/services/web/bad", "not-an-address")
	for _, n := range nodes {
		waitFor(t, n.name+" lists A (weight 1) and B (weight 3)", func() bool {
			bs, ok := n.ruleBackends()
			return ok && len(bs) == 2 && bs[a] == 1 && bs[b] == 3
		})
		seen := map[string]bool{}
		waitFor(t, n.name+" serves from A and B", func() bool {
			got, _ := n.greeting()
			seen[got] = true
			return seen["A"] && seen["B"]
		})
		warned := n.p.count(func(r record) bool {
			return r["msg"] == "discovered backend skipped" && r["key"] == "/services/web/bad"
		})
		if warned != 1 {
			t.Errorf("%s: the bad value warned %d times, want once", n.name, warned)
		}
	}
	stopA()
	stopped := time.Now()
	for _, n := range nodes {
		waitFor(t, n.name+" drops A", func() bool {
			bs, ok := n.ruleBackends()
			_, hasA := bs[a]
			return ok && !hasA
		})
	}
	took := time.Since(stopped)
	t.Logf("A left every pool %v after its keep-alive stopped", took.Round(10*time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("A left every pool %v after its lease stopped being renewed, want within 2s lease + 1s", took.Round(10*time.Millisecond))
	}
	for _, n := range nodes {
		for range 5 {
			if got, err := n.greeting(); got != "B" {
				t.Fatalf("%s after A left: greeting %q, %v; want B", n.name, got, err)
			}
		}
	}
	a2 := namedBackend(t, "A2")
	c.register("/services/web/a2", a2, 2)
	for _, n := range nodes {
		waitFor(t, n.name+" lists A2", func() bool {
			bs, ok := n.ruleBackends()
			_, has := bs[a2]
			return ok && has && len(bs) == 2
		})
	}
}

// backendStates returns the states of rule web's backends that n's API
// lists, by address; ok is false while it does not answer.
func (n *fleetNode) backendStates() (map[string]string, bool) {
	resp, err := http.Get("http://" + n.admin + "/api/v1/rules/web/backends")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var body struct {
		Backends []struct {
			Address string `json:"address"`
			State   string `json:"state"`
		} `json:"backends"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil, false
	}
	out := map[string]string{}
	for _, b := range body.Backends {
		out[b.Address] = b.State
	}
	return out, true
}

// TestFleetDiscoveredBackendStaysDrained: a discovered backend drained
// through one instance, whose registration then expires and comes back,
// is drained again on every instance as soon as it is listed: the fleet's
// stored state (state/backends/...) is applied to a backend discovery
// adds, not only to the ones there when it was written.
func TestFleetDiscoveredBackendStaysDrained(t *testing.T) {
	c := startEtcd(t, 3)
	a, b := namedBackend(t, "A"), namedBackend(t, "B")
	conf := "log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = \"unix:front.sock\"\nbackends_from = \"etcd:/services/web/\"\n"
	rev := pushedRevision(t, push(t, c, filepath.Join(t.TempDir(), "state.json"), conf))
	nodes := []*fleetNode{startNode(t, c, "n1"), startNode(t, c, "n2")}
	waitSeen(t, rev, nodes...)
	stopA := c.register("/services/web/a", a, 2)
	c.etcdctl("put", "/services/web/b", b)
	for _, n := range nodes {
		waitFor(t, n.name+" lists A and B", func() bool { st, ok := n.backendStates(); return ok && len(st) == 2 })
	}
	if r := runSluice(t, nil, "backend", "web", a, "drain", "--admin", nodes[0].admin); r.code != 0 {
		t.Fatalf("drain A through n1: %v", r)
	}
	for _, n := range nodes {
		waitFor(t, n.name+" drains A", func() bool { st, _ := n.backendStates(); return st[a] == "drain" })
	}
	stopA()
	for _, n := range nodes {
		waitFor(t, n.name+" drops A (its lease expired)", func() bool {
			st, ok := n.backendStates()
			_, has := st[a]
			return ok && !has
		})
	}
	c.register("/services/web/a", a, 2)
	for _, n := range nodes {
		waitFor(t, n.name+" lists A again", func() bool { st, _ := n.backendStates(); return st[a] != "" })
		if st, _ := n.backendStates(); st[a] != "drain" {
			t.Errorf("%s: A came back %q; want drain, as the fleet stored it", n.name, st[a])
		}
		for range 5 {
			if got, err := n.greeting(); got != "B" {
				t.Fatalf("%s after A came back: greeting %q, %v; want B only", n.name, got, err)
			}
		}
	}
}

// greetTCP connects to addr and returns the backend's name.
func greetTCP(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	k, err := c.Read(buf)
	return strings.TrimSpace(string(buf[:k])), err
}

// serveNamed serves connections on addr as namedBackend does, until the
// returned listener is closed.
func serveNamed(t *testing.T, addr, name string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	loopback.ServeOn(t, ln, func(c net.Conn) { fmt.Fprintf(c, "%s\n", name) })
	return ln
}

// TestSRVDiscoveredBackends: a rule's backends come from SRV records of a
// real DNS server (dnsmasq on a loopback port): connections reach the
// priority-1 target, and the priority-2 one only while the first is down.
func TestSRVDiscoveredBackends(t *testing.T) {
	addrs := freeAddrs(t, 2)
	primaryAddr, backup := addrs[0], namedBackend(t, "S")
	primary := serveNamed(t, primaryAddr, "P")
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	dns := dnsmasq.Start(t, "--srv-host=_web._tcp.example.test,p.example.test,"+port(primaryAddr)+",1,10",
		"--srv-host=_web._tcp.example.test,s.example.test,"+port(backup)+",2,0",
		"--host-record=p.example.test,127.0.0.1", "--host-record=s.example.test,127.0.0.1")
	listen := addrs[1]
	conf := fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends_from = \"srv:_web._tcp.example.test@%s\"\nresolve_ttl = \"1s\"\n", listen, dns.Addr)
	p := startProc(t, nil, sluiceBin, "-c", writeConfig(t, conf))
	p.waitFrom(0, "the SRV backends discovered", func(r record) bool {
		return r["msg"] == "backends discovered" && fmt.Sprint(r["backends"]) == "2"
	})
	for range 5 {
		if got, err := greetTCP(listen); got != "P" {
			t.Fatalf("with the primary up: %q, %v; want P", got, err)
		}
	}
	p.allowErrors("the primary is stopped")
	primary.Close()
	for range 5 {
		if got, err := greetTCP(listen); got != "S" {
			t.Fatalf("with the primary down: %q, %v; want S (priority 2)", got, err)
		}
	}
	serveNamed(t, primaryAddr, "P")
	waitFor(t, "the primary takes the connections again", func() bool {
		got, _ := greetTCP(listen)
		return got == "P"
	})
}
