package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"sluice/internal/config"
)

// TestListenersConfig: the listeners figures' config of a rule per port is
// one sluice takes, with a rule on each port; the baseline's has one.
func TestListenersConfig(t *testing.T) {
	for _, tc := range []struct {
		layout listenersLayout
		n      int
	}{{rulePerPort, 50}, {onePort, 1}} {
		cfg, err := config.Parse("bench.toml", []byte(listenersConfig(tc.layout, 20000, tc.n, "127.0.0.1:9")))
		if err != nil {
			t.Fatalf("layout %d: %v", tc.layout, err)
		}
		if len(cfg.Rules) != tc.n || cfg.Rules[tc.n-1].Listen.String() != "127.0.0.1:"+strconv.Itoa(20000+tc.n-1) {
			t.Errorf("layout %d: %d rules, the last on %s", tc.layout, len(cfg.Rules), cfg.Rules[len(cfg.Rules)-1].Listen)
		}
	}
}

// TestLogTail: next finds a line once it is complete, even when it was
// written in pieces, and never finds the same line twice.
func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output.log")
	tail := &logTail{path: path}
	if got, err := tail.next("msg=started"); got != "" || err != nil {
		t.Fatalf("before the file exists: %q %v", got, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, step := range []struct{ write, want string }{
		{"level=INFO msg=listening\nlevel=INFO msg=sta", ""},
		{"rted rules=2\n", "msg=started"},
		{"level=INFO msg=reloaded\n", "msg=reloaded"},
		{"", ""},
	} {
		f.WriteString(step.write)
		if got, err := tail.next("msg=started", "msg=reloaded"); got != step.want || err != nil {
			t.Errorf("after %q: %q %v, want %q", step.write, got, err, step.want)
		}
	}
}
