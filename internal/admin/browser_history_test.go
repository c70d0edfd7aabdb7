package admin

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// trafficController is a testController whose rule web's first backend
// reports the rule's bytes and connections as its own, as the server's
// backends do.
type trafficController struct{ *testController }

// Rules implements Controller.
func (c trafficController) Rules() []RuleStatus {
	rules := c.testController.Rules()
	for i := range rules {
		if r := &rules[i]; r.Name == "web" {
			b := &r.Backends[0]
			b.BytesUp, b.BytesDown, b.ConnectionsTotal, b.Active =
				r.Counters.BytesUp, r.Counters.BytesDown, r.Counters.ConnectionsTotal, r.Counters.Active
		}
	}
	return rules
}

// TestDashboardHistorySurvivesReload: traffic shows as rates on the
// backend's row; after it stops and the page is reloaded, the charts
// start from the server's history: at once more points than polls (a
// fresh page without history has fewer), and the traffic's peak from
// before the reload.
func TestDashboardHistorySurvivesReload(t *testing.T) {
	ctl := newTestController(t)
	s, err := Listen("127.0.0.1:0", Options{Controller: trafficController{ctl}, Gatherer: ctl.reg, HistoryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	base := "http://" + s.Addr().String()
	busy, _ := ctl.open("web")
	tab := newBrowser(t, 90*time.Second)
	var console consoleLog
	console.listen(t, tab)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "two polls", jsPolls+` >= 2`)

	stop := make(chan struct{})
	pumped := make(chan error, 1)
	go func() { pumped <- pump(busy, stop) }()
	li := fmt.Sprintf(`document.querySelector('article[data-rule="web"] li[data-backend="%s"]')`, ctl.backend.Addr())
	waitFor(t, tab, "the backend's rates", li+` !== null && Number(`+li+`.dataset.rateUp || 0) > 0 && `+
		li+`.querySelector('.rate').textContent.includes('/s')`)
	waitFor(t, tab, "the traffic charted", jsBytesPeak+` > 0`)
	close(stop)
	if err := <-pumped; err != nil {
		t.Fatal(err)
	}
	// Enough quiet for a few history samples after the traffic.
	waitFor(t, tab, "quiet polls", fmt.Sprintf(`%s >= %v`, jsPolls, eval[float64](t, tab, jsPolls)+2))

	if err := chromedp.Do(tab, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the first poll after the reload", jsPolls+` >= 1`)
	const jsPoints = `Number(document.querySelector('[data-rule="web"] .c-bytes').dataset.points || 0)`
	got := eval[[]float64](t, tab, `[`+jsPolls+`, `+jsPoints+`, `+jsBytesPeak+`]`)
	polls, points, peak := got[0], got[1], got[2]
	if points <= polls+5 {
		t.Errorf("after the reload: %v points in %v polls; want the server's history drawn as well", points, polls)
	}
	if peak <= 0 {
		t.Errorf("after the reload the chart's peak is %v: the traffic before it is not drawn", peak)
	}
	if p := console.take(); len(p) > 0 {
		t.Errorf("the dashboard wrote to the console:\n%s", strings.Join(p, "\n"))
	}
}
