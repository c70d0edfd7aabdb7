package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// fleetSource is what a fleet hands the admin API: the instances it reads
// from its store, changed by the test as a store's contents would change.
type fleetSource struct {
	mu  sync.Mutex // guards f and err
	f   Fleet
	err error
}

// read is the Options.Fleet function.
func (s *fleetSource) read(ctx context.Context) (Fleet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.f
	f.Instances = append([]FleetInstance(nil), f.Instances...)
	return f, s.err
}

// set replaces what the store holds.
func (s *fleetSource) set(f Fleet, err error) {
	s.mu.Lock()
	s.f, s.err = f, err
	s.mu.Unlock()
}

// threeInstances is a fleet of three, seen from b; c runs an older
// revision and is unhealthy.
func threeInstances(started time.Time) Fleet {
	return Fleet{Self: "b", Instances: []FleetInstance{
		{Name: "a", Version: "1.4.0", PID: 11, Started: started, Revision: 42, Healthy: true},
		{Name: "b", Version: "1.4.0", PID: 12, Started: started.Add(time.Minute), Revision: 42, Healthy: true},
		{Name: "c", Version: "1.3.9", PID: 13, Started: started, Revision: 41, Healthy: false,
			LastError: `config: etcd:/sluice/config@42: rule "x": listen 127.0.0.1:80: address already in use`},
	}}
}

// TestFleetAPI: GET /api/v1/fleet lists the instances Options.Fleet reads,
// with their ages; a store that does not answer is a 502 with its error;
// without Options.Fleet the answer says this sluice is not in a fleet.
func TestFleetAPI(t *testing.T) {
	ctl := newTestController(t)
	src := &fleetSource{}
	started := time.Now().Add(-time.Hour)
	src.set(threeInstances(started), nil)
	base := startAdminWith(t, Options{Controller: ctl, Fleet: src.read})
	resp, body := do(t, http.MethodGet, base+"/api/v1/fleet", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/fleet: %d %s", resp.StatusCode, body)
	}
	var got Fleet
	decode(t, body, &got)
	if !got.InFleet || got.Self != "b" || len(got.Instances) != 3 || got.Instances[2].LastError == "" {
		t.Fatalf("got %+v", got)
	}
	if age := got.Instances[0].AgeSeconds; age < 3600 || age > 3600+60 {
		t.Errorf("a's age is %v s, want about an hour", age)
	}

	src.set(Fleet{}, errors.New("context deadline exceeded"))
	resp, body = do(t, http.MethodGet, base+"/api/v1/fleet", "")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "context deadline exceeded") {
		t.Errorf("store away: %d %s, want 502 with its error", resp.StatusCode, body)
	}

	alone := startAdmin(t, newTestController(t), "")
	resp, body = do(t, http.MethodGet, alone+"/api/v1/fleet", "")
	decode(t, body, &got)
	if resp.StatusCode != http.StatusOK || got.InFleet || got.Instances == nil || len(got.Instances) != 0 {
		t.Errorf("not in a fleet: %d %s", resp.StatusCode, body)
	}
}

// Expressions into the fleet panel.
const (
	jsFleetPolls = `Number(document.documentElement.dataset.fleetPolls || 0)`
	jsFleetShown = `!document.getElementById('fleet').hidden`
)

// TestDashboardFleetPanel: in a fleet, the dashboard lists every instance
// with its version, revision, health, last error and age, marks this one
// and those behind the newest revision, and follows the store's changes;
// an instance gone from the store leaves the panel. Not in a fleet, the
// panel stays hidden.
func TestDashboardFleetPanel(t *testing.T) {
	ctl := newTestController(t)
	src := &fleetSource{}
	started := time.Now().Add(-2 * time.Hour)
	src.set(threeInstances(started), nil)
	base := startAdminWith(t, Options{Controller: ctl, Fleet: src.read})
	alone := startAdmin(t, newTestController(t), "")
	tab := newBrowser(t, 90*time.Second)
	var console consoleLog
	console.listen(t, tab)

	if err := chromedp.Do(tab, chromedp.Navigate(alone+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "two polls and the fleet's answer", jsPolls+` >= 2 && `+jsFleetPolls+` >= 1`)
	if eval[bool](t, tab, jsFleetShown) {
		t.Error("the fleet panel shows on a sluice that is not in a fleet")
	}

	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the fleet panel with three instances", jsFleetShown+
		` && document.querySelectorAll('#fleet tbody tr').length === 3`)
	row := func(name, cell string) string {
		return eval[string](t, tab, `document.querySelector('#fleet tr[data-instance="`+name+`"] .`+cell+`').textContent`)
	}
	if got := row("c", "revision"); got != "41" {
		t.Errorf("c's revision: %q", got)
	}
	if got := row("c", "health"); got != "unhealthy" {
		t.Errorf("c's health: %q", got)
	}
	if got := row("c", "last-error"); !strings.Contains(got, "address already in use") {
		t.Errorf("c's last error: %q", got)
	}
	if got := row("a", "version"); got != "1.4.0" {
		t.Errorf("a's version: %q", got)
	}
	if got := row("a", "age"); got != "2h 0m" {
		t.Errorf("a's age: %q, want 2h 0m", got)
	}
	if !eval[bool](t, tab, `document.querySelector('#fleet tr[data-instance="b"]').classList.contains('self')`) {
		t.Error("this instance (b) is not marked")
	}
	if !eval[bool](t, tab, `document.querySelector('#fleet tr[data-instance="c"]').classList.contains('behind')`) {
		t.Error("c, a revision behind, is not marked")
	}

	f := threeInstances(started)
	f.Instances = f.Instances[:2] // c's lease ran out
	src.set(f, nil)
	waitFor(t, tab, "c gone from the panel", `document.querySelectorAll('#fleet tbody tr').length === 2 && `+
		`document.querySelector('#fleet tr[data-instance="c"]') === null`)
	if p := console.take(); len(p) > 0 {
		t.Errorf("the dashboard wrote to the console:\n%s", strings.Join(p, "\n"))
	}
}
