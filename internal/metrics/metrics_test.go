package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// newServed returns fresh metrics and a function that scrapes them over a
// real HTTP server on loopback and parses the text exposition.
func newServed(t *testing.T) (*Metrics, func() map[string]*dto.MetricFamily) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return m, func() map[string]*dto.MetricFamily {
		t.Helper()
		return scrape(t, srv.URL)
	}
}

// scrape fetches url and parses it as the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape of %s: %v", url, err)
	}
	return fams
}

// value returns the value of the series of family name whose labels are
// exactly labels (name=value pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// mustValue is value that fails the test when the series is missing.
func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(fams, name, labels...)
	if !ok {
		t.Fatalf("series %s%v missing from the scrape", name, labels)
	}
	return v
}

func TestScrapeNamesLabelsValues(t *testing.T) {
	m, get := newServed(t)
	web, dns := m.Rule("web"), m.Rule("dns")
	for range 3 {
		web.ConnOpened()
	}
	web.ConnClosed()
	up, down := web.Bytes()
	up.Add(1000)
	down.Add(250000)
	web.Rejected("acl")
	web.Rejected("acl")
	web.Rejected("rate")
	web.ConnectDuration(3 * time.Millisecond)
	web.ConnectDuration(2 * time.Second)
	dns.UDPSessionOpened()
	dns.UDPSessionOpened()
	dns.UDPSessionClosed()
	m.SetBackendSource(func() []BackendState {
		return []BackendState{
			{Rule: "web", Backend: "10.0.0.5:80", Up: true, ConnectErrors: 2},
			{Rule: "web", Backend: "10.0.0.6:80", Up: false, ConnectErrors: 7, State: "ready"},
			{Rule: "edge", Route: "app", Backend: "10.0.0.6:80", Up: true, ConnectErrors: 1, State: "drain"},
		}
	})
	edge := m.Rule("edge")
	edge.Routed("app")
	edge.Routed("app")
	edge.Routed("default")
	edge.TLSHandshake(SideClient, "ok", 2*time.Millisecond)
	edge.TLSHandshake(SideClient, "timeout", 3*time.Second)
	edge.TLSHandshake(SideBackend, "verify", time.Millisecond)
	m.SetCertificateSource(func() []Certificate {
		return []Certificate{{Rule: "edge", Name: "app.example.com", NotAfter: time.Unix(1900000000, 0)}}
	})

	fams := get()
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_connections_total", []string{"rule", "web"}, 3},
		{"sluice_connections_active", []string{"rule", "web"}, 2},
		{"sluice_connections_total", []string{"rule", "dns"}, 0},
		{"sluice_bytes_total", []string{"rule", "web", "direction", "up"}, 1000},
		{"sluice_bytes_total", []string{"rule", "web", "direction", "down"}, 250000},
		{"sluice_rejected_total", []string{"rule", "web", "reason", "acl"}, 2},
		{"sluice_rejected_total", []string{"rule", "web", "reason", "rate"}, 1},
		{"sluice_udp_sessions_active", []string{"rule", "dns"}, 1},
		{"sluice_backend_up", []string{"rule", "web", "route", "", "backend", "10.0.0.5:80"}, 1},
		{"sluice_backend_up", []string{"rule", "web", "route", "", "backend", "10.0.0.6:80"}, 0},
		{"sluice_backend_connect_errors_total", []string{"rule", "web", "route", "", "backend", "10.0.0.6:80"}, 7},
		{"sluice_backend_up", []string{"rule", "edge", "route", "app", "backend", "10.0.0.6:80"}, 1},
		{"sluice_backend_connect_errors_total", []string{"rule", "edge", "route", "app", "backend", "10.0.0.6:80"}, 1},
		{"sluice_backend_state", []string{"rule", "web", "route", "", "backend", "10.0.0.5:80", "state", "ready"}, 1},
		{"sluice_backend_state", []string{"rule", "web", "route", "", "backend", "10.0.0.6:80", "state", "maint"}, 0},
		{"sluice_backend_state", []string{"rule", "edge", "route", "app", "backend", "10.0.0.6:80", "state", "drain"}, 1},
		{"sluice_backend_state", []string{"rule", "edge", "route", "app", "backend", "10.0.0.6:80", "state", "ready"}, 0},
		{"sluice_route_connections_total", []string{"rule", "edge", "route", "app"}, 2},
		{"sluice_route_connections_total", []string{"rule", "edge", "route", "default"}, 1},
		{"sluice_tls_handshakes_total", []string{"rule", "edge", "side", "client", "result", "ok"}, 1},
		{"sluice_tls_handshakes_total", []string{"rule", "edge", "side", "client", "result", "timeout"}, 1},
		{"sluice_tls_handshakes_total", []string{"rule", "edge", "side", "backend", "result", "verify"}, 1},
		{"sluice_tls_certificate_expiry_timestamp_seconds", []string{"rule", "edge", "name", "app.example.com"}, 1900000000},
	}
	for _, c := range checks {
		if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	checkTypes(t, fams)
	checkHistogram(t, fams)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("runtime/process family %s missing", name)
		}
	}
}

// checkTypes checks the type of every sluice family.
func checkTypes(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	types := map[string]dto.MetricType{
		"sluice_connections_total":            dto.MetricType_COUNTER,
		"sluice_connections_active":           dto.MetricType_GAUGE,
		"sluice_bytes_total":                  dto.MetricType_COUNTER,
		"sluice_rejected_total":               dto.MetricType_COUNTER,
		"sluice_backend_up":                   dto.MetricType_GAUGE,
		"sluice_backend_state":                dto.MetricType_GAUGE,
		"sluice_backend_connect_errors_total": dto.MetricType_COUNTER,
		"sluice_connect_duration_seconds":     dto.MetricType_HISTOGRAM,
		"sluice_udp_sessions_active":          dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("family %s: got %v, want type %v", name, f.GetType(), typ)
		}
	}
}

// checkHistogram checks the connect-duration observations of TestScrape.
func checkHistogram(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	var h *dto.Histogram
	for _, s := range fams["sluice_connect_duration_seconds"].GetMetric() {
		if len(s.Label) == 1 && s.Label[0].GetValue() == "web" {
			h = s.Histogram
		}
	}
	if h == nil {
		t.Fatal("no connect-duration histogram for rule web")
	}
	if h.GetSampleCount() != 2 {
		t.Errorf("connect duration: %d samples, want 2", h.GetSampleCount())
	}
	if s := h.GetSampleSum(); s < 2.003-1e-9 || s > 2.003+1e-9 {
		t.Errorf("connect duration sum = %v, want 2.003", s)
	}
	for _, b := range h.Bucket {
		want := uint64(0)
		switch ub := b.GetUpperBound(); {
		case ub >= 2:
			want = 2
		case ub >= 0.003:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

func TestLabelsAreBounded(t *testing.T) {
	m, get := newServed(t)
	r := m.Rule("web")
	r.ConnOpened()
	r.Rejected("acl")
	r.ConnectDuration(time.Millisecond)
	m.SetBackendSource(func() []BackendState { return []BackendState{{Rule: "web", Backend: "b:1"}} })
	r.Routed("app")
	r.TLSHandshake(SideClient, "ok", time.Millisecond)
	m.SetCertificateSource(func() []Certificate { return []Certificate{{Rule: "web", Name: "a.example"}} })
	// Each from the config (rule, route, backend, certificate name) or from
	// a small fixed set (direction, reason, side, result, state).
	allowed := map[string]bool{"rule": true, "direction": true, "reason": true, "backend": true,
		"route": true, "side": true, "result": true, "name": true, "state": true}
	for name, f := range get() {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %q; not one of the bounded labels", name, l.GetName())
				}
			}
		}
	}
}

func TestRuleHandleIsStableAndForgetDropsSeries(t *testing.T) {
	m, get := newServed(t)
	a := m.Rule("web")
	if b := m.Rule("web"); a != b {
		t.Fatal("Rule(web) returned a different handle the second time")
	}
	a.ConnOpened()
	a.Rejected("acl")
	a.ConnectDuration(time.Millisecond)
	m.Rule("keep").ConnOpened()
	m.Forget("web")
	fams := get()
	for _, name := range []string{"sluice_connections_total", "sluice_rejected_total", "sluice_connect_duration_seconds"} {
		for _, s := range fams[name].GetMetric() {
			for _, l := range s.Label {
				if l.GetName() == "rule" && l.GetValue() == "web" {
					t.Errorf("%s still has a series for the forgotten rule", name)
				}
			}
		}
	}
	if v := mustValue(t, fams, "sluice_connections_total", "rule", "keep"); v != 1 {
		t.Errorf("the kept rule lost its count: %v", v)
	}
	a.ConnClosed() // a draining connection of the removed rule must not panic or count anywhere
	fresh := m.Rule("web")
	if fresh == a {
		t.Fatal("after Forget, Rule(web) returned the old handle")
	}
	if v := mustValue(t, get(), "sluice_connections_active", "rule", "web"); v != 0 {
		t.Errorf("re-added rule starts at %v active, want 0", v)
	}
}

func TestNilSafe(t *testing.T) {
	var m *Metrics
	r := m.Rule("web")
	if r != nil {
		t.Fatal("nil Metrics returned a non-nil Rule")
	}
	m.Forget("web")
	m.SetBackendSource(func() []BackendState { return nil })
	r.ConnOpened()
	r.ConnClosed()
	r.UDPSessionOpened()
	r.UDPSessionClosed()
	r.Rejected("acl")
	r.ConnectDuration(time.Second)
	up, down := r.Bytes()
	up.Add(1)
	down.Add(1)
	if r.Counters() != (Counters{}) || r.Name() != "" {
		t.Error("nil Rule reported non-zero counters or a name")
	}
}

func TestCountersSnapshot(t *testing.T) {
	m, _ := newServed(t)
	r := m.Rule("web")
	r.ConnOpened()
	r.ConnOpened()
	r.ConnClosed()
	r.UDPSessionOpened()
	r.Rejected("acl")
	r.Rejected("rate")
	up, down := r.Bytes()
	up.Add(5)
	down.Add(7)
	want := Counters{ConnectionsTotal: 2, Active: 1, UDPSessions: 1, BytesUp: 5, BytesDown: 7, Rejected: 2}
	if got := r.Counters(); got != want {
		t.Errorf("Counters() = %+v, want %+v", got, want)
	}
}

func TestRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg); err == nil || !strings.Contains(err.Error(), "metrics: register") {
		t.Fatalf("second New on one registry: err = %v, want a registration error", err)
	}
}

func TestBackendSourceDuplicatesAndReset(t *testing.T) {
	m, get := newServed(t)
	m.SetBackendSource(func() []BackendState {
		return []BackendState{{Rule: "web", Backend: "a:1", Up: true}, {Rule: "web", Backend: "a:1", Up: false}}
	})
	if v := mustValue(t, get(), "sluice_backend_up", "rule", "web", "route", "", "backend", "a:1"); v != 1 {
		t.Errorf("duplicate backend: first report should win, got %v", v)
	}
	m.SetBackendSource(nil)
	if f := get()["sluice_backend_up"]; f != nil {
		t.Errorf("no backend source, yet %d backend_up series", len(f.Metric))
	}
}

// TestConcurrentCountingAndScraping runs the hot path from many goroutines
// while scraping, for the race detector, and checks no count is lost.
func TestConcurrentCountingAndScraping(t *testing.T) {
	m, get := newServed(t)
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := m.Rule(fmt.Sprintf("r%d", w%2))
			up, down := r.Bytes()
			for range rounds {
				r.ConnOpened()
				up.Add(3)
				down.Add(4)
				r.Rejected("rate")
				r.ConnClosed()
			}
		}()
	}
	scrapes := make(chan struct{})
	go func() {
		defer close(scrapes)
		for range 5 {
			get()
		}
	}()
	wg.Wait()
	<-scrapes
	fams := get()
	for _, rule := range []string{"r0", "r1"} {
		n := float64(workers / 2 * rounds)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"sluice_connections_total", []string{"rule", rule}, n},
			{"sluice_connections_active", []string{"rule", rule}, 0},
			{"sluice_bytes_total", []string{"rule", rule, "direction", "up"}, 3 * n},
			{"sluice_bytes_total", []string{"rule", rule, "direction", "down"}, 4 * n},
			{"sluice_rejected_total", []string{"rule", rule, "reason", "rate"}, n},
		} {
			if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
	}
}

// TestHotPathDoesNotAllocate holds the promise that per-chunk and
// per-connection counting is a few atomic adds.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m, _ := newServed(t)
	r := m.Rule("web")
	up, down := r.Bytes()
	r.Rejected("acl")
	allocs := testing.AllocsPerRun(1000, func() {
		up.Add(1500)
		down.Add(1500)
		r.ConnOpened()
		r.ConnClosed()
		r.Rejected("acl")
		r.ConnectDuration(time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("hot path allocates %v times per run, want 0", allocs)
	}
}

// BenchmarkBytesAdd measures the hot path: one chunk counted in each direction.
func BenchmarkBytesAdd(b *testing.B) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	up, down := m.Rule("web").Bytes()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			up.Add(16384)
			down.Add(16384)
		}
	})
}
