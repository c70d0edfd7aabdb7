package relay

import (
	"net"
	"testing"
	"time"
)

// TestAwait: a socket given to Await waits in the parker, not on a
// goroutine; ready comes once bytes are there, or once the timeout has
// passed on a silent socket; and the socket has left the parker's epoll
// set by then, so that it can be parked again (as a relay direction
// would).
func TestAwait(t *testing.T) {
	parker := newParker(t)
	client, server := connPair(t, "tcp")
	defer client.Close()
	defer server.Close()
	rc, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{}, 1)
	signal := func() { ready <- struct{}{} }

	if !parker.Await(rc, time.Minute, signal) {
		t.Fatal("Await refused a TCP socket")
	}
	waitParked(t, parker, 1)
	client.Write([]byte("x"))
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("ready not called once bytes were there")
	}
	waitParked(t, parker, 0)

	// Again, on the same socket, now readable at once: it must be watched
	// afresh, not refused as already in the set.
	if !parker.Await(rc, time.Minute, signal) {
		t.Fatal("Await refused a socket that was awaited before")
	}
	<-ready
	server.Read(make([]byte, 1))

	began := time.Now()
	if !parker.Await(rc, 200*time.Millisecond, signal) {
		t.Fatal("Await refused the socket a third time")
	}
	select {
	case <-ready:
		if waited := time.Since(began); waited < 200*time.Millisecond {
			t.Fatalf("ready after %v on a silent socket, before its timeout", waited)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ready not called when the timeout passed")
	}
	waitParked(t, parker, 0)
}

// TestAwaitClosedParker: a closed parker watches nothing.
func TestAwaitClosedParker(t *testing.T) {
	parker := newParker(t)
	parker.Close()
	_, server := connPair(t, "tcp")
	defer server.Close()
	rc, _ := server.(*net.TCPConn).SyscallConn()
	if parker.Await(rc, time.Second, func() { t.Error("ready called") }) {
		t.Fatal("a closed parker took a socket")
	}
}
