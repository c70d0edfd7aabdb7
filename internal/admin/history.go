package admin

import (
	"net/http"
	"sync"
	"time"
)

// HistoryWindow is how far back the admin server keeps each rule's
// counters for GET /api/v1/history: as long as the dashboard's charts
// span.
const HistoryWindow = 5 * time.Minute

// defaultHistoryInterval is how often the counters are sampled when
// Options.HistoryInterval is zero.
const defaultHistoryInterval = 5 * time.Second

// Sample is one rule's counters at a moment, as GET /api/v1/history
// lists them.
type Sample struct {
	At time.Time `json:"t"`
	Counters
}

// history keeps the last HistoryWindow of every rule's counters, sampled
// every interval, so that a dashboard opened or reloaded draws the recent
// past at once. Memory is bounded: a ring of HistoryWindow/interval
// samples per running rule; a rule that is no longer running is dropped.
type history struct {
	ctl      Controller
	interval time.Duration
	size     int // samples kept per rule

	stop chan struct{} // closed by stopSampling
	done chan struct{} // closed when the sampler has returned
	once sync.Once     // closes stop

	mu      sync.Mutex       // guards the following fields
	rules   map[string]*ring // by rule name
	started bool             // the sampler runs (or ran)
}

// ring is a fixed-size circular buffer of samples.
type ring struct {
	buf  []Sample
	next int // where the next sample goes
	n    int // samples held, up to len(buf)
}

// newHistory returns a history of ctl's rules sampled every interval
// (zero: defaultHistoryInterval), not yet sampling.
func newHistory(ctl Controller, interval time.Duration) *history {
	if interval <= 0 {
		interval = defaultHistoryInterval
	}
	return &history{
		ctl: ctl, interval: interval, size: max(2, int(HistoryWindow/interval)),
		rules: make(map[string]*ring), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// start samples at once and then every interval until stopSampling.
func (h *history) start() {
	h.mu.Lock()
	h.started = true
	h.mu.Unlock()
	h.sample(time.Now())
	go func() {
		defer close(h.done)
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case now := <-t.C:
				h.sample(now)
			}
		}
	}()
}

// stopSampling ends the sampling and waits for it. Safe to call more
// than once, and on a history that never started.
func (h *history) stopSampling() {
	h.mu.Lock()
	started := h.started
	h.mu.Unlock()
	h.once.Do(func() { close(h.stop) })
	if started {
		<-h.done
	}
}

// sample adds every running rule's counters at now, and drops the rings
// of rules no longer running.
func (h *history) sample(now time.Time) {
	rules := h.ctl.Rules()
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		seen[r.Name] = true
		rg := h.rules[r.Name]
		if rg == nil {
			rg = &ring{buf: make([]Sample, h.size)}
			h.rules[r.Name] = rg
		}
		rg.buf[rg.next] = Sample{At: now.UTC(), Counters: r.Counters}
		rg.next = (rg.next + 1) % len(rg.buf)
		rg.n = min(rg.n+1, len(rg.buf))
	}
	for name := range h.rules {
		if !seen[name] {
			delete(h.rules, name)
		}
	}
}

// snapshot returns every rule's samples, oldest first.
func (h *history) snapshot() map[string][]Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]Sample, len(h.rules))
	for name, rg := range h.rules {
		s := make([]Sample, 0, rg.n)
		for i := range rg.n {
			s = append(s, rg.buf[(rg.next-rg.n+i+len(rg.buf))%len(rg.buf)])
		}
		out[name] = s
	}
	return out
}

// historyReply is the body of GET /api/v1/history.
type historyReply struct {
	IntervalMS int64               `json:"interval_ms"` // time between samples
	WindowMS   int64               `json:"window_ms"`   // how far back samples are kept
	Rules      map[string][]Sample `json:"rules"`       // by rule name, oldest first
}

// serveHistory answers GET /api/v1/history with the samples kept.
func (h *history) serveHistory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, historyReply{
		IntervalMS: h.interval.Milliseconds(), WindowMS: HistoryWindow.Milliseconds(), Rules: h.snapshot(),
	})
}
