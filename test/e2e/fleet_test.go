package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFleetPushConflictAndBadConfig: a pushed config is applied by every
// instance; a push from a stale revision is refused and names the
// revision it lost to; a config that validates but cannot be applied
// (its second rule's port is taken), pushed with --force, leaves every
// instance on the old config and reporting the error.
func TestFleetPushConflictAndBadConfig(t *testing.T) {
	c := startEtcd(t, 3)
	a, b := namedBackend(t, "A"), namedBackend(t, "B")
	stateA, stateB := filepath.Join(t.TempDir(), "a.json"), filepath.Join(t.TempDir(), "b.json")
	rev := pushedRevision(t, push(t, c, stateA, fleetConfig(a)))
	nodes := []*fleetNode{startNode(t, c, "n1"), startNode(t, c, "n2"), startNode(t, c, "n3")}
	waitSeen(t, rev, nodes...)
	for _, n := range nodes {
		if got, err := n.greeting(); got != "A" {
			t.Fatalf("%s: greeting %q, %v; want A", n.name, got, err)
		}
	}
	// Both pushers start from rev: b's pull, then a's push wins.
	if r := runSluice(t, nil, "cluster", "pull", "--etcd", c.endpoints(), "--state", stateB); r.code != 0 {
		t.Fatalf("pull: %v", r)
	}
	rev2 := pushedRevision(t, push(t, c, stateA, fleetConfig(b)))
	lost := push(t, c, stateB, fleetConfig(a))
	if want := fmt.Sprintf("lost to revision %d", rev2); lost.code != 1 || !strings.Contains(lost.stderr, want) {
		t.Fatalf("second push: want exit 1 and %q, got %v", want, lost)
	}
	waitSeen(t, rev2, nodes...)
	for _, n := range nodes {
		if got, err := n.greeting(); got != "B" {
			t.Fatalf("%s after push: greeting %q, %v; want B", n.name, got, err)
		}
	}
	// Valid here, but its port is taken on every instance's machine.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	bad := fleetConfig(a) + fmt.Sprintf("\n[[rule]]\nname = \"taken\"\nlisten = %q\nbackends = [%q]\n", held.Addr().String(), a)
	for _, n := range nodes {
		n.p.allowErrors("the pushed config cannot bind its port")
	}
	rev3 := pushedRevision(t, push(t, c, stateB, bad, "--force"))
	for i, st := range waitSeen(t, rev3, nodes...) {
		if st.Source.Revision != rev2 || st.Source.LastError == "" {
			t.Errorf("%s: revision %d, last error %q; want %d and an error", nodes[i].name, st.Source.Revision, st.Source.LastError, rev2)
		}
		if got, err := nodes[i].greeting(); got != "B" {
			t.Errorf("%s after the bad push: greeting %q, %v; want B (the old config)", nodes[i].name, got, err)
		}
		resp, err := http.Get("http://" + nodes[i].admin + "/metrics")
		if err == nil {
			var sb strings.Builder
			buf := make([]byte, 1<<16)
			for {
				k, err := resp.Body.Read(buf)
				sb.Write(buf[:k])
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			if !strings.Contains(sb.String(), `sluice_config_reloads_total{result="error"} 1`) {
				t.Errorf("%s: no failed reload counted", nodes[i].name)
			}
		}
	}
	status := runSluice(t, nil, "cluster", "status", "--etcd", c.endpoints())
	for _, n := range nodes {
		if !strings.Contains(status.stdout, n.name) || !strings.Contains(status.stdout, "false") {
			t.Errorf("cluster status does not show %s unhealthy:\n%v", n.name, status)
		}
	}
}

// TestFleetEtcdOutage: one member killed (member 0, which started first
// and is most often the leader) changes nothing, not even for a push made
// at once; all members stopped, instances keep serving, /healthz stays
// 200 and GET /api/v1/status says disconnected and which revision runs,
// and one restarted meanwhile serves from its cache; etcd back, a config
// pushed after the outage is applied and the status says connected.
func TestFleetEtcdOutage(t *testing.T) {
	c := startEtcd(t, 3)
	a, b := namedBackend(t, "A"), namedBackend(t, "B")
	state := filepath.Join(t.TempDir(), "s.json")
	rev := pushedRevision(t, push(t, c, state, fleetConfig(a)))
	n1, n2 := startNode(t, c, "n1"), startNode(t, c, "n2")
	waitSeen(t, rev, n1, n2)
	c.stop(c.members[0])
	rev = pushedRevision(t, push(t, c, state, fleetConfig(b)))
	waitSeen(t, rev, n1, n2)
	for _, m := range c.members[1:] {
		c.stop(m)
	}
	for _, n := range []*fleetNode{n1, n2} {
		var st nodeStatus
		waitFor(t, n.name+" sees etcd gone", func() bool { s, ok := n.status(); st = s; return ok && !s.Source.Connected })
		if st.Source.Revision != rev {
			t.Errorf("%s with etcd down: status says revision %d runs, want %d", n.name, st.Source.Revision, rev)
		}
		if code, body := newAdmin(t, n.admin, "").do(http.MethodGet, "/healthz"); code != http.StatusOK {
			t.Errorf("%s with etcd down: GET /healthz %d %q, want 200", n.name, code, body)
		}
		if got, err := n.greeting(); got != "B" {
			t.Fatalf("%s with etcd down: greeting %q, %v; want B", n.name, got, err)
		}
	}
	n2.p.signal(syscall.SIGTERM)
	if code, err := n2.p.waitExit(waitLimit); code != 0 {
		t.Fatalf("n2 stop: exit %d, %v", code, err)
	}
	n2.run(t, c)
	n2.p.wait("the cache is served", isMsg("config: etcd unreachable; serving the cached config until it answers"))
	waitFor(t, "n2 serves from its cache", func() bool { got, _ := n2.greeting(); return got == "B" })
	for _, m := range c.members {
		c.start(m)
	}
	c.waitHealthy()
	rev = pushedRevision(t, push(t, c, state, fleetConfig(a)))
	waitSeen(t, rev, n1, n2)
	for _, n := range []*fleetNode{n1, n2} {
		// The probe, once a second, decides; the watch may apply first.
		waitFor(t, n.name+" says etcd is connected again", func() bool { st, ok := n.status(); return ok && st.Source.Connected })
		if got, err := n.greeting(); got != "A" {
			t.Fatalf("%s after the outage: greeting %q, %v; want A", n.name, got, err)
		}
	}
}

// TestFleetPushRightAfterLeaderDies: a push made the moment the etcd
// leader is killed succeeds. With etcd's default timing (heartbeat 100 ms,
// election 1 s; here 200 ms and 2 s, so that the push surely lands in the
// window) the other members still take the dead member for their leader
// for a while and forward the push's proposal to it, where it is lost; a
// push that waits for it alone times out. Push tries again until a new
// leader commits it.
func TestFleetPushRightAfterLeaderDies(t *testing.T) {
	c := startEtcdElection(t, 3, 2000)
	state := filepath.Join(t.TempDir(), "s.json")
	pushedRevision(t, push(t, c, state, fleetConfig(namedBackend(t, "A"))))
	c.stop(c.leader())
	text := fleetConfig(namedBackend(t, "B"))
	rev := pushedRevision(t, push(t, c, state, text))
	pulled := runSluice(t, nil, "cluster", "pull", "--etcd", c.endpoints(), "--state", state)
	if pulled.code != 0 || pulled.stdout != text || !strings.Contains(pulled.stderr, fmt.Sprintf("revision %d", rev)) {
		t.Fatalf("pull after the push: %v; want the pushed config at revision %d", pulled, rev)
	}
}

// instanceKey reads the instances/ key of the node named name: its mod
// revision and its report's config revision; ok is false when it is gone.
func (c *etcdCluster) instanceKey(name string) (modRev, revision int64, ok bool) {
	var got struct {
		Kvs []struct {
			ModRevision int64  `json:"mod_revision"`
			Value       []byte `json:"value"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(c.etcdctl("get", "/sluice/instances/"+name, "-w", "json")), &got); err != nil {
		c.t.Fatalf("etcdctl get: %v", err)
	}
	if len(got.Kvs) == 0 {
		return 0, 0, false
	}
	var in struct {
		Revision int64 `json:"revision"`
	}
	json.Unmarshal(got.Kvs[0].Value, &in)
	return got.Kvs[0].ModRevision, in.Revision, true
}

// TestFleetInstanceKeyWrittenOnChange: an instance's key is written when
// its report changes, not over and over: across more than a lease's TTL
// with nothing new it keeps its mod revision (the lease alone keeps it
// alive), and a push rewrites it with the new config revision.
func TestFleetInstanceKeyWrittenOnChange(t *testing.T) {
	c := startEtcd(t, 1)
	state := filepath.Join(t.TempDir(), "s.json")
	rev := pushedRevision(t, push(t, c, state, fleetConfig(namedBackend(t, "A"))))
	n := startNode(t, c, "n1")
	waitSeen(t, rev, n)
	var first int64
	waitFor(t, "n1's key reports revision "+fmt.Sprint(rev), func() bool {
		mod, r, ok := c.instanceKey("n1")
		first = mod
		return ok && r == rev
	})
	const quiet = 12 * time.Second // the lease's TTL is 10 s
	for end := time.Now().Add(quiet); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		mod, _, ok := c.instanceKey("n1")
		if !ok || mod != first {
			t.Fatalf("with nothing new, n1's key went from mod revision %d to %d (present: %t); want it left alone", first, mod, ok)
		}
	}
	rev = pushedRevision(t, push(t, c, state, fleetConfig(namedBackend(t, "B"))))
	waitFor(t, "n1's key reports revision "+fmt.Sprint(rev), func() bool { _, r, ok := c.instanceKey("n1"); return ok && r == rev })
	status := runSluice(t, nil, "cluster", "status", "--etcd", c.endpoints())
	if !strings.Contains(status.stdout, "n1") || !strings.Contains(status.stdout, fmt.Sprint(rev)) {
		t.Errorf("cluster status does not show n1 at revision %d:\n%v", rev, status)
	}
}

// TestFleetDrainThroughOneInstance: a backend drained through instance
// A's admin API gets no new connection from instance B.
func TestFleetDrainThroughOneInstance(t *testing.T) {
	c := startEtcd(t, 3)
	a, b := namedBackend(t, "A"), namedBackend(t, "B")
	rev := pushedRevision(t, push(t, c, filepath.Join(t.TempDir(), "s.json"), fleetConfig(a, b)))
	n1, n2 := startNode(t, c, "n1"), startNode(t, c, "n2")
	waitSeen(t, rev, n1, n2)
	if r := runSluice(t, nil, "backend", "web", a, "drain", "--admin", n1.admin); r.code != 0 {
		t.Fatalf("drain through n1: %v", r)
	}
	waitFor(t, "n2 drains A", func() bool {
		resp, err := http.Get("http://" + n2.admin + "/api/v1/rules/web/backends")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		buf := make([]byte, 1<<16)
		k, _ := resp.Body.Read(buf)
		return strings.Contains(string(buf[:k]), `"address":"`+a+`","state":"drain"`)
	})
	for range 10 {
		if got, err := n2.greeting(); got != "B" {
			t.Fatalf("n2 after the drain: greeting %q, %v; want B only", got, err)
		}
	}
}
