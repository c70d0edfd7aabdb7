package e2e

import (
	"strings"
	"testing"
)

// prefixLimitScript runs in a network namespace of its own, whose loopback
// has three more IPv6 addresses: two in 2001:db8:1:1::/64 and one in the
// next /64. sluice allows one live connection per client, counting IPv6
// clients by their /64. A client from the first address holds its
// connection; then one from the second address of the same /64 and one
// from the other /64 try. It prints the access lines' ends, one per line.
const prefixLimitScript = `
set -e
ip link set lo up
ip -6 addr add 2001:db8:1:1::1/128 dev lo nodad
ip -6 addr add 2001:db8:1:1::2/128 dev lo nodad
ip -6 addr add 2001:db8:1:2::1/128 dev lo nodad
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
socat TCP6-LISTEN:9001,bind=[::1],fork,reuseaddr EXEC:cat &
cat > "$dir/sluice.toml" <<CONF
log_format = "json"

[[rule]]
name = "v6"
listen = "[::1]:8000"
backends = ["[::1]:9001"]
max_connections_per_ip = 1
per_ip_prefix_v6 = 64
CONF
"$SLUICE" -c "$dir/sluice.toml" 2> "$dir/log" &
for i in $(seq 1 50); do grep -q '"msg":"listening"' "$dir/log" && break; sleep 0.1; done
sleep 5 | socat - TCP6:[::1]:8000,bind=[2001:db8:1:1::1] > /dev/null &
for i in $(seq 1 50); do [ "$(ss -Htn state established dst [::1]:9001 | wc -l)" -ge 1 ] && break; sleep 0.1; done
echo hi | socat -t 1 - TCP6:[::1]:8000,bind=[2001:db8:1:1::2] > /dev/null || true
echo hi | socat -t 1 - TCP6:[::1]:8000,bind=[2001:db8:1:2::1] > /dev/null || true
for i in $(seq 1 50); do [ "$(grep -c '"msg":"access"' "$dir/log")" -ge 2 ] && break; sleep 0.1; done
grep '"msg":"access"' "$dir/log" | grep -o '"client":"[^"]*"\|"end":"[^"]*"' | paste -sd' ' | sed 's/ "client"/\n"client"/g'
`

// TestPerIPPrefixV6: with per_ip_prefix_v6 = 64, two addresses of one /64
// share the per-IP limit, and an address of another /64 does not.
func TestPerIPPrefixV6(t *testing.T) {
	t.Parallel()
	got := runInNetns(t, prefixLimitScript)
	for _, want := range []string{
		`"client":"[2001:db8:1:1::2]`, `"end":"rejected:max-connections-per-ip"`,
		`"client":"[2001:db8:1:2::1]`, `"end":"eof"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("access lines lack %s; got:\n%s", want, got)
		}
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	for _, l := range lines {
		if strings.Contains(l, "2001:db8:1:1::2") && !strings.Contains(l, "rejected:max-connections-per-ip") {
			t.Errorf("the second address of the held /64 was not refused: %s", l)
		}
		if strings.Contains(l, "2001:db8:1:2::1") && strings.Contains(l, "rejected") {
			t.Errorf("an address of the other /64 was refused: %s", l)
		}
	}
}
