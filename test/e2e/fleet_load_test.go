package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// loadPushes is how many configs TestFleetPushesUnderLoad pushes.
const loadPushes = 20

// loadFleetConfig is push i's config: rule web, which carries the
// traffic and never changes, and rule side, whose idle timeout changes
// with every push; every third push also brings (or takes away) a rule
// extra. Every rule listens on a relative unix socket, in each
// instance's own directory.
func loadFleetConfig(echo string, i int) string {
	var sb strings.Builder
	sb.WriteString("log_format = \"json\"\n")
	fmt.Fprintf(&sb, "\n[[rule]]\nname = \"web\"\nlisten = \"unix:front.sock\"\nbackends = [%q]\n", echo)
	fmt.Fprintf(&sb, "\n[[rule]]\nname = \"side\"\nlisten = \"unix:side.sock\"\nbackends = [%q]\nidle_timeout = \"%ds\"\n", echo, 60+i)
	if i/3%2 == 1 {
		fmt.Fprintf(&sb, "\n[[rule]]\nname = \"extra\"\nlisten = \"unix:extra.sock\"\nbackends = [%q]\n", echo)
	}
	return sb.String()
}

// waitApplied waits until every node runs revision rev: applied, not
// only seen, and no error reported.
func waitApplied(t *testing.T, rev int64, nodes ...*fleetNode) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, fmt.Sprintf("%s applies revision %d", n.name, rev), func() bool {
			st, ok := n.status()
			// Seen moves before the apply and Revision after it: in
			// between, only an error says the apply failed.
			if ok && st.Source.Seen >= rev && st.Source.LastError != "" {
				t.Fatalf("%s rejected revision %d: running %d, error %q",
					n.name, rev, st.Source.Revision, st.Source.LastError)
			}
			return ok && st.Source.Revision >= rev
		})
	}
}

// appliedMsg is the line an instance logs when it has applied a config
// from etcd, with its revision: the bench's fleet figures time pushes by
// it.
const appliedMsg = "config: applied from etcd"

// appliedLine matches the line saying revision rev was applied.
func appliedLine(rev int64) func(record) bool {
	return func(r record) bool { return r.str("msg") == appliedMsg && r.num("revision") == rev }
}

// instanceKeys reads every instances/ key through etcdctl, by name.
func instanceKeys(t *testing.T, c *etcdCluster) map[string]map[string]any {
	t.Helper()
	out, err := exec.Command("etcdctl", "--endpoints", c.endpoints(), "--command-timeout", "5s",
		"get", "--prefix", "/sluice/instances/", "--print-value-only").Output()
	if err != nil {
		t.Fatalf("etcdctl get instances/: %v", err)
	}
	keys := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var in map[string]any
		if json.Unmarshal([]byte(line), &in) == nil {
			keys[fmt.Sprint(in["name"])] = in
		}
	}
	return keys
}

// checkFleetAPI checks that n's GET /api/v1/fleet lists every node of
// nodes, each running revision rev, and names n as itself.
func checkFleetAPI(t *testing.T, n *fleetNode, rev int64, nodes ...*fleetNode) {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + "/api/v1/fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		InFleet   bool   `json:"in_fleet"`
		Self      string `json:"self"`
		Instances []struct {
			Name     string `json:"name"`
			Revision int64  `json:"revision"`
			Healthy  bool   `json:"healthy"`
		} `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/fleet: %d, %v", resp.StatusCode, err)
	}
	if !got.InFleet || got.Self != n.name || len(got.Instances) != len(nodes) {
		t.Fatalf("GET /api/v1/fleet from %s: %+v, want all %d instances", n.name, got, len(nodes))
	}
	for i, in := range got.Instances {
		if in.Name != nodes[i].name || in.Revision != rev || !in.Healthy {
			t.Errorf("GET /api/v1/fleet: instance %d is %+v, want %s, healthy, at revision %d", i, in, nodes[i].name, rev)
		}
	}
}

// TestFleetPushesUnderLoad: three instances carry clients that connect
// over and over and long streams, while 20 configs are pushed. Every
// instance applies every push (its status, its instances/ key and its log
// say so, and GET /api/v1/fleet lists all three at the last one), no
// connect fails, every stream comes back byte for byte, and no instance
// logs an ERROR line: a push is as gentle as a SIGHUP reload.
func TestFleetPushesUnderLoad(t *testing.T) {
	c := startEtcd(t, 3)
	echoAddr := startBackend(t, echo).addr
	state := filepath.Join(t.TempDir(), "s.json")
	rev := pushedRevision(t, push(t, c, state, loadFleetConfig(echoAddr, 0)))
	nodes := []*fleetNode{startNode(t, c, "n1"), startNode(t, c, "n2"), startNode(t, c, "n3")}
	waitApplied(t, rev, nodes...)

	fronts := map[string]string{}
	var churn []string
	for _, n := range nodes {
		fronts[n.name] = "unix:" + n.front()
		churn = append(churn, n.name, n.name)
	}
	fixed := map[string]bool{"n1": true, "n2": true, "n3": true}
	l := startLoad(t, newAddrBook(fronts), churn, fixed)
	var streams []*stream
	for _, n := range nodes {
		for k := range 2 {
			streams = append(streams, l.addStream(fmt.Sprintf("%s-stream%d", n.name, k), fronts[n.name]))
		}
	}
	l.waitProgress(l.snapshot(), 5, 64<<10)

	var revs []int64
	for i := 1; i <= loadPushes; i++ {
		from := l.snapshot()
		rev = pushedRevision(t, push(t, c, state, loadFleetConfig(echoAddr, i)))
		revs = append(revs, rev)
		waitApplied(t, rev, nodes...)
		l.waitProgress(from, 2, streamChunk)
	}
	waitFor(t, fmt.Sprintf("every instances/ key reports revision %d", rev), func() bool {
		keys := instanceKeys(t, c)
		for _, n := range nodes {
			in, ok := keys[n.name]
			if !ok || in["revision"] != float64(rev) || in["healthy"] != true {
				return false
			}
		}
		return true
	})

	checkFleetAPI(t, nodes[0], rev, nodes...)

	l.halt()
	var moved int64
	for _, s := range streams {
		moved += s.finish(t)
	}
	l.checkChurn()
	t.Logf("%d pushes applied by %d instances; streams moved %d bytes each way", loadPushes, len(nodes), moved)
	for _, n := range nodes {
		if lines := n.p.errorLines(); len(lines) > 0 {
			t.Errorf("%s logged ERROR lines:\n%s", n.name, strings.Join(lines, "\n"))
		}
		for _, r := range revs {
			if n.p.count(appliedLine(r)) != 1 {
				t.Errorf("%s: no line says revision %d was applied (msg %q)", n.name, r, appliedMsg)
			}
		}
	}
}
