package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args  []string
		d     time.Duration
		idleN int
		only  string
	}{
		{nil, 5 * time.Second, 5000, "haproxy,nginx,sluice"},
		{[]string{"-smoke"}, time.Second, 500, "haproxy,nginx,sluice"},
		{[]string{"-smoke", "-d", "3s", "-idle", "7"}, 3 * time.Second, 7, "haproxy,nginx,sluice"},
		{[]string{"-only", "sluice, haproxy"}, 5 * time.Second, 5000, "haproxy,sluice"},
		{[]string{"-only", "direct"}, 5 * time.Second, 5000, ""},
		{[]string{"-rounds", "3"}, 5 * time.Second, 5000, "haproxy,nginx,sluice"},
	}
	for _, tc := range tests {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		var only []string
		for _, name := range []string{"haproxy", "nginx", "sluice"} {
			if o.only[name] {
				only = append(only, name)
			}
		}
		if want := map[bool]int{true: 1000, false: defaultPorts}[tc.args != nil && tc.args[0] == "-smoke"]; o.ports != want {
			t.Errorf("%q: ports %d, want %d", tc.args, o.ports, want)
		}
		if o.d != tc.d || o.idleN != tc.idleN || strings.Join(only, ",") != tc.only {
			t.Errorf("%q: got d=%v idle=%d only=%v", tc.args, o.d, o.idleN, only)
		}
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-only", "envoy"},
		{"-d", "0s"},
		{"-idle", "-1"},
		{"-rounds", "0"},
		{"-bogus"},
		{"extra"},
	} {
		_, err := parseFlags(args, io.Discard)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}

func TestSelectFigures(t *testing.T) {
	all := append(figures(), udpFigures()...)
	got, err := selectFigures(all, []string{"new connections", "udp one-way"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, f.name)
	}
	if want := "new connections,udp one-way 64 B,udp one-way 1400 B"; strings.Join(names, ",") != want {
		t.Errorf("got %q, want %q", names, want)
	}
	got, err = selectFigures(all, []string{"request/response"})
	if err != nil || len(got) != 1 || got[0].name != "request/response" {
		t.Errorf("a whole name: got %d figures (%v), want request/response only", len(got), err)
	}
	if got, _ := selectFigures(all, nil); len(got) != len(all) {
		t.Errorf("no parts: got %d figures, want all %d", len(got), len(all))
	}
	_, err = selectFigures(all, []string{"idle", "latency"})
	var usage usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), `"latency"`) {
		t.Errorf("unknown part: got %v, want a usage error naming it", err)
	}
}

func TestTableFormat(t *testing.T) {
	res := &results{
		columns: []string{"direct", "a", "b"},
		rows: []row{
			{label: "rate", format: "%.0f", cmp: vsDirect},
			{label: "errors", format: "%.0f", cmp: plain},
			{label: "mem", format: "%.1f", cmp: vsLowest},
		},
		cells: map[string]map[string]cell{
			"rate":   {"direct": {samples: []float64{150, 200, 900}}, "a": {samples: []float64{100}}, "b": {failed: true}},
			"errors": {"direct": {samples: []float64{0}}, "a": {samples: []float64{3, 2, 1}}, "b": {samples: []float64{0}}},
			"mem":    {"a": {samples: []float64{2}}, "b": {samples: []float64{5}}},
		},
	}
	var out strings.Builder
	if err := printTable(&out, res); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"figure   direct   a             b",
		"rate     200      100 (0.50x)   FAIL",
		"errors   0        2             0",
		"mem      -        2.0 (1.00x)   5.0 (2.50x)",
	}
	got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	for i := range want {
		if i >= len(got) || strings.TrimRight(got[i], " ") != want[i] {
			t.Fatalf("table:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
		}
	}
}

func TestNginxStreamModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ngx_stream_module.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		v, load string
		skip    bool
	}{
		"built in":       {"configure arguments: --with-stream --with-http_ssl_module", "", false},
		"dynamic":        {"configure arguments: --modules-path=" + dir + " --with-stream=dynamic", "load_module " + dir + "/ngx_stream_module.so;", false},
		"dynamic absent": {"configure arguments: --modules-path=" + dir + "/none --with-stream=dynamic", "", true},
		"none":           {"configure arguments: --with-http_ssl_module", "", true},
	}
	for name, tc := range tests {
		load, skip := nginxStreamModule(tc.v)
		if load != tc.load || (skip != "") != tc.skip {
			t.Errorf("%s: got %q, skip %q", name, load, skip)
		}
	}
}
