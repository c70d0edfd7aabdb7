package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// queueDoc sets slow start and queueing in [defaults], a rule and a
// route, and a backend's max_connections.
const queueDoc = `[defaults]
slow_start = "30s"
queue_timeout = "5s"

[[rule]]
name = "q"
listen = ":1"
backends = [{ address = "a:1", max_connections = 100 }, "b:2"]
max_queue = 3

[[rule.route]]
sni = ["x.example"]
backends = [{ address = "c:3", max_connections = 2 }]
slow_start = "off"
queue_timeout = "1s"

[[rule]]
name = "plain"
listen = ":2"
backends = ["a:1"]
slow_start = "off"
queue_timeout = "off"
`

// TestParseQueueKeys checks slow_start, queue_timeout, max_queue and a
// backend's max_connections: read, inherited by rule and route, lifted
// with "off", and written back by Format to the same config.
func TestParseQueueKeys(t *testing.T) {
	got, err := Parse("sluice.toml", []byte(queueDoc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	q := got.Rules[0]
	if q.SlowStart != 30*time.Second || q.QueueTimeout != 5*time.Second || q.MaxQueue != 3 {
		t.Errorf("rule q: slow_start %v, queue_timeout %v, max_queue %d; want 30s, 5s, 3", q.SlowStart, q.QueueTimeout, q.MaxQueue)
	}
	if q.Backends[0].MaxConnections != 100 || q.Backends[1].MaxConnections != 0 {
		t.Errorf("rule q backends: %+v", q.Backends)
	}
	rt := q.Routes[0]
	if rt.SlowStart != 0 || rt.QueueTimeout != time.Second || rt.MaxQueue != 3 || rt.Backends[0].MaxConnections != 2 {
		t.Errorf("route: slow_start %v, queue_timeout %v, max_queue %d, backends %+v; want 0, 1s, 3 (the rule's), max_connections 2",
			rt.SlowStart, rt.QueueTimeout, rt.MaxQueue, rt.Backends)
	}
	plain := got.Rules[1]
	if plain.SlowStart != 0 || plain.QueueTimeout != 0 || plain.MaxQueue != 1024 {
		t.Errorf("rule plain: slow_start %v, queue_timeout %v, max_queue %d; want off, off, 1024", plain.SlowStart, plain.QueueTimeout, plain.MaxQueue)
	}
	out := got.Format()
	for _, want := range []string{`{ address = "a:1", weight = 1, backup = false, max_connections = 100 }`, `slow_start = "30s"`, `queue_timeout = "1s"`, "max_queue = 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("Format lacks %s:\n%s", want, out)
		}
	}
	again, err := Parse("sluice.toml", []byte(out))
	if err != nil {
		t.Fatalf("Parse(Format()): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Rules, got.Rules) {
		t.Errorf("Format does not round-trip:\n%+v\n%+v", again.Rules, got.Rules)
	}
}

// TestParseQueueKeysBad checks the new keys' errors name file and line.
func TestParseQueueKeysBad(t *testing.T) {
	for _, tt := range []badCase{
		{"slow_start not a duration", "[[rule]]\n" + ok + "slow_start = \"soon\"\n",
			[]string{`sluice.toml:5: rule "web": slow_start "soon": invalid duration (want e.g. "90s", "5m", "1h")`}},
		{"queue_timeout zero", "[[rule]]\n" + ok + "queue_timeout = \"0s\"\n",
			[]string{`sluice.toml:5: rule "web": queue_timeout "0s": must be greater than zero`}},
		{"max_queue zero", "[[rule]]\n" + ok + "max_queue = 0\n",
			[]string{`sluice.toml:5: rule "web": max_queue 0: must be at least 1`}},
		{"max_connections negative", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\n  { address = \"b:2\", max_connections = -1 },\n]\n",
			[]string{`sluice.toml:5: rule "web": backend "b:2": max_connections -1: must not be negative`}},
		{"route queue_timeout", "[[rule]]\n" + ok + "[[rule.route]]\nsni = [\"a\"]\nbackends = [\"c:3\"]\nqueue_timeout = 5\n",
			[]string{`sluice.toml:8: rule "web": route "route-1": queue_timeout 5: want a string, not an integer`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sluice.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded; want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}
