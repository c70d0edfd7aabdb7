package main

import (
	"strings"
	"testing"
)

// TestStateChangesKeepOneBackendReady: the changer never drains the first
// backend, and sets the second back to ready within its cycle, so a
// failed connection in the figure is the forwarder's fault.
func TestStateChangesKeepOneBackendReady(t *testing.T) {
	drained := false
	for _, ch := range stateChanges {
		switch {
		case ch.backend == 0 && strings.Contains(ch.body, "state"):
			t.Errorf("the changer sets the first backend's state: %s", ch.body)
		case ch.backend == 1 && strings.Contains(ch.body, `"drain"`):
			drained = true
		case ch.backend == 1 && strings.Contains(ch.body, `"ready"`):
			drained = false
		}
	}
	if drained {
		t.Error("the changer's cycle leaves the second backend drained")
	}
}

// TestStateFigureIsSluiceOnly: only forwarders with statesArgv (sluice)
// take part in the state figure; direct has no process to change.
func TestStateFigureIsSluiceOnly(t *testing.T) {
	argv := func(_, _, _ string) ([]string, error) { return nil, nil }
	fig := stateFigures()[0]
	if !fig.needsProc {
		t.Error("the state figure runs for direct")
	}
	if (forwarder{name: "haproxy", argv: argv, tlsArgv: func(string, tlsSpec) ([]string, error) { return nil, nil }}).relays(fig) {
		t.Error("a peer takes part in the state figure")
	}
	if !(forwarder{name: "sluice", argv: argv, statesArgv: sluiceStatesArgv("sluice")}).relays(fig) {
		t.Error("sluice does not take part in the state figure")
	}
}
