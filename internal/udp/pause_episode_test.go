package udp

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/backoff"
	"sluice/internal/conntrack"
)

// TestPauseIsOneEpisode: a socket that opens right after a failure (a
// descriptor freed for a moment, or a session on another loop that raced
// the failure) lets sessions open again at once but does not end the
// pause's episode: the next failure pauses without a second warning, and
// the all-clear comes with a socket opened a second after the last
// failure. CI saw "paused", "opening again" 0.6 ms later, "paused" again.
func TestPauseIsOneEpisode(t *testing.T) {
	logs := newLogRecorder()
	pool := backend.NewPool(backend.Settings{Name: "test"}, nil, slog.New(logs))
	svc := NewService(&Rule{Name: "test", Pool: pool}, Deps{Logger: slog.New(logs), Table: conntrack.NewTable()})
	ss := &session{svc: svc}
	short := &backend.OpenError{Err: errors.New("socket: too many open files")}
	svc.pauseFor(short)
	svc.opened()
	if !svc.mayOpen(ss) {
		t.Fatal("a socket opened, yet new sessions stay paused")
	}
	svc.pauseFor(short)
	if n := len(logs.find(isMsg(pausedMsg))); n != 1 {
		t.Fatalf("%d warnings for one shortage, want 1", n)
	}
	if n := len(logs.find(isMsg(resumedMsg))); n != 0 {
		t.Fatalf("an all-clear between two failures %v apart", time.Millisecond)
	}
	// The all-clear needs the last failure a full back-off old: a second
	// of time passing is the state here.
	time.Sleep(backoff.Max)
	svc.opened()
	if n := len(logs.find(isMsg(resumedMsg))); n != 1 {
		t.Fatalf("%d all-clears a second after the last failure, want 1", n)
	}
}
