package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestHistoryIsBounded: sampled for far longer than HistoryWindow (by a
// clock the test moves), each rule keeps HistoryWindow/interval samples,
// the newest, oldest first; a rule no longer running is dropped.
func TestHistoryIsBounded(t *testing.T) {
	ctl := newTestController(t)
	const interval = 5 * time.Second
	h := newHistory(ctl, interval)
	start := time.Unix(1700000000, 0)
	const n = 1000
	for i := range n {
		ctl.metrics.Rule("web").ConnOpened() // a count that tells samples apart
		h.sample(start.Add(time.Duration(i) * interval))
	}
	got := h.snapshot()
	want := int(HistoryWindow / interval)
	web := got["web"]
	if len(web) != want || len(got["dns"]) != want {
		t.Fatalf("kept %d and %d samples, want %d each", len(web), len(got["dns"]), want)
	}
	first, last := web[0], web[len(web)-1]
	if !last.At.Equal(start.Add((n-1)*interval)) || last.ConnectionsTotal != n {
		t.Errorf("newest sample %+v, want the last one taken (connection %d)", last, n)
	}
	if span := last.At.Sub(first.At); span >= HistoryWindow {
		t.Errorf("samples span %v, want less than %v", span, HistoryWindow)
	}
	for i := 1; i < len(web); i++ {
		if web[i].At.Sub(web[i-1].At) != interval || web[i].ConnectionsTotal != web[i-1].ConnectionsTotal+1 {
			t.Fatalf("samples %d and %d out of order: %+v, %+v", i-1, i, web[i-1], web[i])
		}
	}

	ctl.mu.Lock()
	ctl.rules = ctl.rules[:1] // dns is removed
	ctl.mu.Unlock()
	h.sample(start.Add(n * interval))
	if got := h.snapshot(); got["dns"] != nil || len(got["web"]) != want {
		t.Errorf("after dns went: %d dns samples, %d web; want none and %d", len(got["dns"]), len(got["web"]), want)
	}
}

// TestHistoryServedOnFirstRequest: a server samples as it starts, so the
// first GET /api/v1/history already has every rule's counters; later
// samples follow every interval, and Shutdown stops the sampler.
func TestHistoryServedOnFirstRequest(t *testing.T) {
	ctl := newTestController(t)
	c, _ := ctl.open("web")
	if _, err := fmt.Fprint(c, "hello"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", Options{Controller: ctl, HistoryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String()
	var reply historyReply
	read := func() {
		t.Helper()
		resp, body := do(t, "GET", base+"/api/v1/history", "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/v1/history: %s %s", resp.Status, body)
		}
		reply = historyReply{}
		if err := json.Unmarshal([]byte(body), &reply); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
	}
	read()
	if web := reply.Rules["web"]; len(web) == 0 || web[0].BytesUp != 5 || web[0].Active != 1 {
		t.Fatalf("first history: web %+v; want a sample with the connection's 5 bytes", web)
	}
	if reply.IntervalMS != 20 || reply.WindowMS != HistoryWindow.Milliseconds() {
		t.Errorf("interval %d ms, window %d ms; want 20 and %d", reply.IntervalMS, reply.WindowMS, HistoryWindow.Milliseconds())
	}
	for deadline := time.Now().Add(10 * time.Second); len(reply.Rules["web"]) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("history has %d samples after 10 s of sampling every 20 ms", len(reply.Rules["web"]))
		}
		read()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.hist.done:
	default:
		t.Error("the sampler still runs after Shutdown")
	}
}
