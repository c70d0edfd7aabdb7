package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// portShortageScript runs in a network namespace of its own, where
// ip_local_port_range leaves 4 ports: 8 clients (from fixed ports) hold
// connections through sluice (balance first) to two socat backends. The
// first 4 take every local port towards backend one; the next 4 fail to
// connect there with EADDRNOTAVAIL and go to backend two. It prints how
// many connections backend two holds and how many "backend down" lines
// sluice logged.
const portShortageScript = `
set -e
ip link set lo up
echo "40000 40003" > /proc/sys/net/ipv4/ip_local_port_range
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
socat TCP-LISTEN:9001,bind=127.0.0.1,fork,reuseaddr EXEC:cat &
socat TCP-LISTEN:9001,bind=127.0.0.2,fork,reuseaddr EXEC:cat &
"$SLUICE" -l 127.0.0.1:8000 -r 127.0.0.1:9001 -r 127.0.0.2:9001 --balance first --log-format json 2> "$dir/log" &
for i in $(seq 1 50); do grep -q '"msg":"listening"' "$dir/log" && break; sleep 0.1; done
for i in 1 2 3 4 5 6 7 8; do
  sleep 30 | socat - TCP:127.0.0.1:8000,bind=127.0.0.1:5000$i > /dev/null &
  sleep 0.1
done
for i in $(seq 1 50); do
  n=$(ss -Htn state established dst 127.0.0.2:9001 | wc -l)
  [ "$n" -ge 4 ] && break
  sleep 0.1
done
echo "backend2=$(ss -Htn state established dst 127.0.0.2:9001 | wc -l)"
echo "down=$(grep -c '"msg":"backend down"' "$dir/log" || true)"
`

// TestLocalPortShortage: when every local port towards a backend is taken,
// connections move on to the next backend, and the first one is not
// marked down for this host's shortage.
func TestLocalPortShortage(t *testing.T) {
	t.Parallel()
	got := runInNetns(t, portShortageScript)
	if !strings.Contains(got, "backend2=4") || !strings.Contains(got, "down=0") {
		t.Fatalf("want 4 connections moved to backend two and no backend down; got:\n%s", got)
	}
}

// runInNetns runs script with bash in a network namespace of its own, with
// $SLUICE naming the binary under test, and returns what it printed. It
// skips the test where no namespace can be made or a tool is missing.
func runInNetns(t *testing.T, script string) string {
	t.Helper()
	needRoot(t, "for a network namespace of its own", "unshare", "ip", "ss", "socat", "bash")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "bash", "-c", script)
	cmd.Env = append(childEnv(), "SLUICE="+sluiceBin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "unshare failed") {
			t.Skipf("cannot make a network namespace here: %s", out)
		}
		t.Fatalf("scenario: %v\n%s", err, out)
	}
	return string(out)
}
