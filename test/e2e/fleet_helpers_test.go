package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// needEtcd skips the test when etcd is not installed, unless CI is set:
// .ci/run installs it, so there its absence is a failure.
func needEtcd(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd is not installed, and CI=true: .ci/run installs etcd-server")
		}
		t.Skip("etcd is not installed (apt-get install etcd-server); CI would run this test")
	}
}

// etcdMember is one member of a test's etcd cluster.
type etcdMember struct {
	name, client, peer, dir string
	p                       *proc
}

// etcdCluster is a cluster of etcd members on loopback ports with data
// directories under the test's temporary directory.
type etcdCluster struct {
	t        *testing.T
	members  []*etcdMember
	initial  string
	election int // milliseconds; the heartbeat is a tenth of it
}

// startEtcd starts an n-member etcd cluster with a short election timeout
// (500 ms) and waits until it answers.
func startEtcd(t *testing.T, n int) *etcdCluster {
	t.Helper()
	return startEtcdElection(t, n, 500)
}

// startEtcdElection starts an n-member etcd cluster whose election
// timeout is election milliseconds, and waits until it answers.
func startEtcdElection(t *testing.T, n, election int) *etcdCluster {
	t.Helper()
	needEtcd(t)
	addrs := freeAddrs(t, 2*n)
	c := &etcdCluster{t: t, election: election}
	var initial []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("m%d", i), client: "http://" + addrs[2*i],
			peer: "http://" + addrs[2*i+1], dir: filepath.Join(t.TempDir(), "etcd")}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	c.initial = strings.Join(initial, ",")
	for _, m := range c.members {
		c.start(m)
	}
	c.waitHealthy()
	return c
}

// start runs the member m (again, with its data directory, after a stop).
func (c *etcdCluster) start(m *etcdMember) {
	m.p = startProc(c.t, nil, "etcd", "--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", c.initial, "--initial-cluster-state", "new",
		"--heartbeat-interval", fmt.Sprint(c.election/10), "--election-timeout", fmt.Sprint(c.election))
	m.p.allowErrors("etcd's own log lines")
}

// stop kills the member m.
func (c *etcdCluster) stop(m *etcdMember) {
	_ = m.p.cmd.Process.Kill()
	<-m.p.exited
}

// leader returns the member that is the leader now.
func (c *etcdCluster) leader() *etcdMember {
	c.t.Helper()
	out, err := exec.Command("etcdctl", "--endpoints", c.endpoints(), "--command-timeout", "5s",
		"endpoint", "status", "-w", "json").Output()
	if err != nil {
		c.t.Fatalf("etcdctl endpoint status: %v", err)
	}
	var eps []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Leader uint64 `json:"leader"`
		}
	}
	if err := json.Unmarshal(out, &eps); err != nil {
		c.t.Fatalf("etcdctl endpoint status: %v\n%s", err, out)
	}
	for _, ep := range eps {
		for _, m := range c.members {
			if ep.Endpoint == m.client && ep.Status.Header.MemberID == ep.Status.Leader {
				return m
			}
		}
	}
	c.t.Fatalf("no member is the leader:\n%s", out)
	return nil
}

// endpoints lists the members' client URLs for --etcd.
func (c *etcdCluster) endpoints() string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	return strings.Join(eps, ",")
}

// waitHealthy waits until a write through etcdctl succeeds.
func (c *etcdCluster) waitHealthy() {
	c.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		out, err := exec.Command("etcdctl", "--endpoints", c.endpoints(), "--command-timeout", "2s",
			"put", "/test/health", "ok").CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd did not answer within %v: %v %s", waitLimit, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fleetNode is one sluice instance of a test's fleet: it runs in a
// directory of its own, where the fleet config's relative unix socket
// (listen = "unix:front.sock") lands, so that several instances on one
// machine can share one config, and has an admin address of its own.
type fleetNode struct {
	name, dir, admin, cache string
	p                       *proc
}

// front is the path of the node's listening socket.
func (n *fleetNode) front() string { return filepath.Join(n.dir, "front.sock") }

// startNode runs sluice --etcd as the instance name.
func startNode(t *testing.T, c *etcdCluster, name string) *fleetNode {
	t.Helper()
	n := &fleetNode{name: name, dir: t.TempDir(), admin: freeAddrs(t, 1)[0]}
	n.cache = filepath.Join(n.dir, "cache.toml")
	n.run(t, c)
	return n
}

// run starts the node's process (again).
func (n *fleetNode) run(t *testing.T, c *etcdCluster) {
	n.p = startProc(t, func(cmd *exec.Cmd) { cmd.Dir = n.dir }, sluiceBin, "--etcd", c.endpoints(),
		"--instance", n.name, "--etcd-cache", n.cache, "--admin", n.admin, "--log-format", "json")
}

// nodeStatus is what GET /api/v1/status reports of the config source.
type nodeStatus struct {
	Source struct {
		Connected bool   `json:"connected"`
		Revision  int64  `json:"revision"`
		Seen      int64  `json:"seen_revision"`
		FromCache bool   `json:"from_cache"`
		LastError string `json:"last_error"`
	} `json:"config_source"`
}

// status asks the node's admin API; ok is false while it does not answer.
func (n *fleetNode) status() (nodeStatus, bool) {
	var st nodeStatus
	resp, err := http.Get("http://" + n.admin + "/api/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitLimit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSeen waits until every node has taken in revision rev (applied it,
// or rejected it), and returns their statuses.
func waitSeen(t *testing.T, rev int64, nodes ...*fleetNode) []nodeStatus {
	t.Helper()
	out := make([]nodeStatus, len(nodes))
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("%s takes in revision %d", n.name, rev), func() bool {
			st, ok := n.status()
			out[i] = st
			return ok && st.Source.Seen >= rev
		})
	}
	return out
}

// namedBackend serves connections by writing its name and echoing.
func namedBackend(t *testing.T, name string) string {
	return loopback.Serve(t, func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", name)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:k]); err != nil {
				return
			}
		}
	})
}

// fleetConfig is a fleet config: one rule on the relative unix socket,
// with the given backends.
func fleetConfig(backends ...string) string {
	quoted := make([]string, len(backends))
	for i, b := range backends {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"web\"\nlisten = \"unix:front.sock\"\nbackends = [%s]\n",
		strings.Join(quoted, ", "))
}

// greeting connects through the node and returns the backend's name.
func (n *fleetNode) greeting() (string, error) {
	c, err := net.DialTimeout("unix", n.front(), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	k, err := c.Read(buf)
	return strings.TrimSpace(string(buf[:k])), err
}

// push runs sluice cluster push and returns how it ended.
func push(t *testing.T, c *etcdCluster, state, text string, extra ...string) result {
	t.Helper()
	args := append([]string{"cluster", "push", "-c", writeConfig(t, text), "--etcd", c.endpoints(), "--state", state}, extra...)
	return runSluice(t, nil, args...)
}

// pushedRevision reads the revision from push's output.
func pushedRevision(t *testing.T, r result) int64 {
	t.Helper()
	var rev int64
	i := strings.LastIndex(r.stdout, "revision ")
	if r.code != 0 || i < 0 {
		t.Fatalf("push failed: %v", r)
	}
	fmt.Sscanf(r.stdout[i:], "revision %d", &rev)
	return rev
}
