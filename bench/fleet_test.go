package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitFleet(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		fleet bool
		rest  []string
	}{
		{nil, false, nil},
		{[]string{"streams"}, false, []string{"streams"}},
		{[]string{"fleet"}, true, []string{}},
		{[]string{"streams", "fleet", "udp"}, true, []string{"streams", "udp"}},
	} {
		fleet, rest := splitFleet(tc.parts)
		if fleet != tc.fleet || !slices.Equal(rest, tc.rest) {
			t.Errorf("%q: got %v %q, want %v %q", tc.parts, fleet, rest, tc.fleet, tc.rest)
		}
	}
	// The default run and -smoke run allFigures: the fleet is not there.
	for _, f := range allFigures(defaultPorts) {
		if strings.Contains(f.name, fleetFigure) {
			t.Errorf("figure %q would run the fleet in the default run", f.name)
		}
	}
}

func TestSumSamples(t *testing.T) {
	text := `# HELP etcd_network_client_grpc_sent_bytes_total The total number of bytes sent to grpc clients.
# TYPE etcd_network_client_grpc_sent_bytes_total counter
etcd_network_client_grpc_sent_bytes_total 1.5e+06
etcd_network_client_grpc_sent_bytes_total_other 7
etcd_network_client_grpc_sent_bytes_total{kind="x"} 25
etcd_network_client_grpc_received_bytes_total 9
`
	got, err := sumSamples(strings.NewReader(text), grpcSentMetric)
	if err != nil || got != 1.5e6+25 {
		t.Errorf("got %v, %v; want %v", got, err, 1.5e6+25)
	}
	if _, err := sumSamples(strings.NewReader("other 1\n"), grpcSentMetric); err == nil {
		t.Error("an absent metric is not an error")
	}
}

func TestNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 50; i++ {
		ds = append(ds, time.Duration(51-i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 25 * time.Millisecond}, {0.99, 50 * time.Millisecond}, {1, 50 * time.Millisecond}, {0, time.Millisecond}} {
		if got := nearestRank(ds, tc.q); got != tc.want {
			t.Errorf("q %v: %v, want %v", tc.q, got, tc.want)
		}
	}
}

// TestFleetMeasures runs a small fleet set through real etcd and real
// sluice instances: every push is timed on every instance, and etcd's
// costs are read.
func TestFleetMeasures(t *testing.T) {
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (apt-get install etcd-server)")
	}
	if testing.Short() {
		t.Skip("builds sluice and runs etcd")
	}
	ctx := context.Background()
	tmp := t.TempDir()
	bin, err := buildSluice(ctx, tmp)
	if err != nil {
		t.Fatal(err)
	}
	res, err := measureFleet(ctx, etcdBin, bin, tmp, fleetSet{members: 1, instances: 2}, 3, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.converge) != 3 || len(res.each) != 6 {
		t.Fatalf("timed %d pushes and %d applies, want 3 and 6", len(res.converge), len(res.each))
	}
	if res.pushing.sent <= 0 || res.idle.d <= 0 || res.docBytes == 0 {
		t.Errorf("costs not read: %+v", res)
	}
	var out strings.Builder
	if err := printFleet(&out, []fleetResult{res}); err != nil || !strings.Contains(out.String(), "push → applied on every instance, p99") {
		t.Errorf("table: %v\n%s", err, out.String())
	}
}
