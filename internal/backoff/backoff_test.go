package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	var b Delay
	if b.Current() != 0 || b.Reset() {
		t.Fatal("a zero Delay is no episode")
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		wait, first := b.Next()
		if wait != w*time.Millisecond || first != (i == 0) || b.Current() != wait {
			t.Fatalf("failure %d: wait %v first %v, want %v %v", i+1, wait, first, w*time.Millisecond, i == 0)
		}
	}
	if !b.Reset() || b.Current() != 0 {
		t.Fatal("Reset ends the episode and says one was under way")
	}
	if _, first := b.Next(); !first {
		t.Fatal("a failure after Reset begins a new episode")
	}
}

func TestRecoverWaitsOutTheLastFailure(t *testing.T) {
	var b Delay
	if b.Recover(time.Now()) {
		t.Fatal("no episode to end")
	}
	b.Next()
	b.Next()
	if b.Recover(time.Now()) || b.Current() != 0 {
		t.Fatal("a success right after a failure ended the episode, or left its wait in force")
	}
	if wait, first := b.Next(); first || wait != Min {
		t.Fatalf("the next failure: wait %v, first %v; want the episode going on, waits from the start (%v, false)", wait, first, Min)
	}
	if !b.Recover(time.Now().Add(Max)) || b.Current() != 0 {
		t.Fatal("a success a full Max after the last failure did not end the episode")
	}
}
