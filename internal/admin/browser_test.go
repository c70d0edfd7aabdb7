package admin

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// screenshotPath is where the browser test leaves a picture of the
// dashboard for a person to look at.
const screenshotPath = "/tmp/dashboard.png"

// unhealthyShotPath is where it leaves a picture of the dashboard while the
// server is unhealthy.
const unhealthyShotPath = "/tmp/dashboard-unhealthy.png"

// routesShotPath is where the routes browser test leaves a picture of a
// routed rule's card.
const routesShotPath = "/tmp/dashboard-routes.png"

// findChromium returns the path of a Chromium or Chrome binary. Without
// one the test skips, except under CI=true, where it fails.
func findChromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no Chromium found (looked for %s; set CHROMIUM to its path): the dashboard browser test needs one, "+
		"install Debian's chromium", strings.Join(candidates[1:], ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab's context. It ends with the test.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(findChromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	return tab
}

// consoleLog collects what the page writes to its console: errors and
// warnings from the console API, uncaught exceptions, and browser log
// entries of level warning or error (failed loads, CSP violations).
type consoleLog struct {
	mu       sync.Mutex // guards problems
	problems []string
}

// listen subscribes to the tab's console events.
func (c *consoleLog) listen(t *testing.T, tab context.Context) {
	t.Helper()
	err := chromedp.Listen(tab, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeWarning && e.Type != runtime.ConsoleAPICalledTypeAssert {
				return
			}
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			msg = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg = fmt.Sprintf("exception: %s", d.Text)
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			msg += fmt.Sprintf(" at %s:%d", d.URL, d.LineNumber+1)
		case *cdplog.EventEntryAdded:
			if e.Entry.Level != cdplog.EntryLevelError && e.Entry.Level != cdplog.EntryLevelWarning {
				return
			}
			msg = fmt.Sprintf("browser log %s/%s: %s %s", e.Entry.Source, e.Entry.Level, e.Entry.Text, e.Entry.URL)
		default:
			return
		}
		c.mu.Lock()
		c.problems = append(c.problems, msg)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("start browser: %v", err)
	}
}

// take returns the problems seen so far and forgets them.
func (c *consoleLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.problems
	c.problems = nil
	return p
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate in the tab until it holds. The
// sign-in page replaces its document with the dashboard's, which destroys
// the JavaScript context a poll runs in; such a poll is started again, a
// few times at most.
func waitFor(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	var err error
	for range 5 {
		_, err = chromedp.Run(tab, chromedp.Poll[bool](expr,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			break
		}
	}
	if err != nil {
		page, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.title + " | " + (document.body ? document.body.innerText.slice(0, 400) : "")`))
		t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, page)
	}
}

// pump sends data through conn and reads the echo until stop is closed,
// so the rule's byte counters keep moving.
func pump(conn net.Conn, stop <-chan struct{}) error {
	chunk := make([]byte, 64<<10)
	back := make([]byte, len(chunk))
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(chunk); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, back); err != nil {
			return err
		}
	}
}

// Selectors and expressions into the dashboard's DOM. The canvases expose
// data-points and data-peak, and <html> exposes data-polls (see charts.js and dashboard.js).
const (
	jsPolls     = `Number(document.documentElement.dataset.polls || 0)`
	jsBytesPeak = `Number(document.querySelector('[data-rule="web"] .c-bytes').dataset.peak || 0)`
	jsConnsPeak = `Number(document.querySelector('[data-rule="web"] .c-conns').dataset.peak || 0)`
	jsBytesHash = `(function(){var s=document.querySelector('[data-rule="web"] .c-bytes').toDataURL(),h=0;` +
		`for(var i=0;i<s.length;i++){h=(h*31+s.charCodeAt(i))|0}return String(h)})()`
)

// TestDashboardInBrowser loads the dashboard in headless Chromium through
// the token sign-in, and checks that it loads cleanly, that its charts
// follow the traffic, and that its close button closes a connection.
func TestDashboardInBrowser(t *testing.T) {
	const token = "browser-test-token"
	ctl := newTestController(t)
	base := startAdmin(t, ctl, token)
	busy, busyID := ctl.open("web")
	victim, victimID := ctl.open("web")
	ctl.open("dns")

	tab := newBrowser(t, 90*time.Second)
	var console consoleLog
	console.listen(t, tab)

	signInProblems := signIn(t, tab, &console, base, token)
	checkDashboardContent(t, tab, busyID, victimID)

	checkChartsFollowTraffic(t, tab, busy)
	closeFromDashboard(t, tab, ctl, victim, victimID, busyID)
	checkHealthReasonShown(t, tab, &console, ctl)

	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(screenshotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := append(signInProblems, console.take()...); len(p) > 0 {
		t.Errorf("the dashboard wrote to the console:\n%s", strings.Join(p, "\n"))
	}
}

// signIn opens the dashboard first with a wrong token, then with the right
// one, and returns the console problems of the successful sign-in.
func signIn(t *testing.T, tab context.Context, console *consoleLog, base, token string) []string {
	t.Helper()
	// A wrong token leaves the sign-in page up with a message.
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/#token=wrong")); err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	waitFor(t, tab, "the refusal message", `document.getElementById('message') && document.getElementById('message').textContent.includes('refused')`)
	console.take() // the refused loads are logged as failed (401), as they should be
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}

	// A fresh load with the token signs in and shows the dashboard.
	signInURL := base + "/#token=" + token
	if err := chromedp.Do(tab, chromedp.Navigate(signInURL)); err != nil {
		t.Fatalf("open %s: %v", signInURL, err)
	}
	waitFor(t, tab, "two polls of the API", jsPolls+` >= 2`)
	if got := eval[string](t, tab, `location.hash`); got != "" {
		t.Errorf("the token stays in the address bar: %q", got)
	}
	// The browser logs the sign-in page's own 401 status as a failed load:
	// that one line is the documented cost of answering 401 to a request
	// without the token. Anything else is a problem.
	expected := "browser log network/error: Failed to load resource: the server responded with a status of 401 (Unauthorized) " + signInURL
	return slices.DeleteFunc(console.take(), func(p string) bool { return p == expected })
}

// checkChartsFollowTraffic pushes traffic through conn, a connection of
// rule web, and checks the charts show it.
func checkChartsFollowTraffic(t *testing.T, tab context.Context, busy net.Conn) {
	t.Helper()
	if peak := eval[float64](t, tab, jsBytesPeak); peak != 0 {
		t.Fatalf("throughput chart peak %v before any traffic, want 0", peak)
	}
	before := eval[string](t, tab, jsBytesHash)
	stop := make(chan struct{})
	pumped := make(chan error, 1)
	go func() { pumped <- pump(busy, stop) }()
	waitFor(t, tab, "the throughput chart and the upload tile to show traffic",
		jsBytesPeak+` > 64*1024 && /^[1-9]/.test(document.getElementById('t-up').textContent)`)
	close(stop)
	if err := <-pumped; err != nil {
		t.Fatalf("pump traffic: %v", err)
	}
	checkRatesSmoothed(t, tab)
	if after := eval[string](t, tab, jsBytesHash); after == before {
		t.Error("the throughput canvas did not change while traffic flowed")
	}
	if peak := eval[float64](t, tab, jsConnsPeak); peak < 2 {
		t.Errorf("connections chart peak %v, want at least the 2 active web connections", peak)
	}
}

// checkDashboardContent checks the rule cards, backend health and
// connection rows after the first polls.
func checkDashboardContent(t *testing.T, tab context.Context, ids ...uint64) {
	t.Helper()
	rules := eval[[]string](t, tab, `Array.from(document.querySelectorAll('#rules .card')).map(c => c.dataset.rule)`)
	if !slices.Equal(rules, []string{"web", "dns"}) {
		t.Errorf("rule cards %v, want [web dns]", rules)
	}
	state := eval[string](t, tab, `document.querySelector('[data-rule="web"] li[data-backend="10.0.0.6:80"] .state').textContent`)
	if state != "down" {
		t.Errorf("backend 10.0.0.6:80 shown as %q, want down", state)
	}
	if h := eval[string](t, tab, `document.getElementById('health').dataset.state`); h != "ok" {
		t.Errorf("health pill %q, want ok", h)
	}
	rows := eval[[]string](t, tab, `Array.from(document.querySelectorAll('#conns tbody tr')).map(r => r.dataset.id)`)
	for _, id := range ids {
		if !slices.Contains(rows, fmt.Sprint(id)) {
			t.Errorf("connection %d not in the table %v", id, rows)
		}
	}
}

// closeFromDashboard clicks the close button of one connection and checks
// the controller closed it, and only it, and the row went away for good.
func closeFromDashboard(t *testing.T, tab context.Context, ctl *testController, victim net.Conn, victimID, keepID uint64) {
	t.Helper()
	row := fmt.Sprintf(`tr[data-id="%d"]`, victimID)
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(row+" button.close"))); err != nil {
		t.Fatalf("click close on connection %d: %v", victimID, err)
	}
	waitFor(t, tab, "the closed row to go", `document.querySelector('`+row+`') === null`)
	waitEOF(t, victim)
	ctl.waitGone(victimID)
	if got := ctl.closed(); !slices.Equal(got, []uint64{victimID}) {
		t.Errorf("the controller was asked to close %v, want [%d]", got, victimID)
	}
	polls := eval[float64](t, tab, jsPolls)
	waitFor(t, tab, "two more polls", fmt.Sprintf(`%s >= %v`, jsPolls, polls+2))
	if eval[bool](t, tab, `document.querySelector('`+row+`') !== null`) {
		t.Error("the closed connection came back in the table")
	}
	if !eval[bool](t, tab, fmt.Sprintf(`document.querySelector('tr[data-id="%d"]') !== null`, keepID)) {
		t.Error("the other connection left the table")
	}
}

// rateWindow is how long the dashboard averages its rates over, as the page
// says.
const rateWindow = 5 * time.Second

// checkRatesSmoothed runs after a burst of traffic has stopped: the page
// says its rates are averaged over rateWindow, and two polls later (a whole
// poll interval with no traffic) the upload rate still shows the burst,
// where an unsmoothed rate would read 0.
func checkRatesSmoothed(t *testing.T, tab context.Context) {
	t.Helper()
	stopped := time.Now()
	polls := eval[float64](t, tab, jsPolls)
	waitFor(t, tab, "two polls after the traffic stopped", fmt.Sprintf(`%s >= %v`, jsPolls, polls+2))
	up := eval[string](t, tab, `document.getElementById('t-up').textContent`)
	rule := eval[string](t, tab, `document.querySelector('[data-rule="web"] .v-up').textContent`)
	if late := time.Since(stopped); late > rateWindow-time.Second {
		t.Logf("two polls took %v on this machine: too long to tell a smoothed rate from a plain one", late)
	} else if strings.HasPrefix(up, "0 B") || strings.HasPrefix(rule, "0 B") {
		t.Errorf("upload rate %q (tile), %q (rule) %v after the traffic stopped, want the burst averaged over %v", up, rule, late, rateWindow)
	}
	text := eval[string](t, tab, `document.body.innerText`)
	if want := fmt.Sprintf("rates averaged over %d s", int(rateWindow.Seconds())); !strings.Contains(text, want) {
		t.Errorf("the page does not say %q:\n%s", want, text)
	}
}

// checkHealthReasonShown makes the server unhealthy and checks that the
// reason is text on the page (not only a tooltip), in the header and on
// the rule's card it names, and that it goes when the server is healthy
// again.
func checkHealthReasonShown(t *testing.T, tab context.Context, console *consoleLog, ctl *testController) {
	t.Helper()
	const reason = `rule "web": listen 127.0.0.1:8080: use of closed file`
	ctl.setHealth(false, reason)
	waitFor(t, tab, "the unhealthy pill", `document.getElementById('health').textContent === 'unhealthy'`)
	if text := eval[string](t, tab, `document.querySelector('header.top').innerText`); !strings.Contains(text, reason) {
		t.Errorf("the header does not show why the server is unhealthy: %q, want %q", text, reason)
	}
	card := eval[string](t, tab, `document.querySelector('[data-rule="web"]').innerText`)
	if want := "listen 127.0.0.1:8080: use of closed file"; !strings.Contains(card, want) {
		t.Errorf("rule web's card does not show its problem %q:\n%s", want, card)
	}
	if other := eval[string](t, tab, `document.querySelector('[data-rule="dns"]').innerText`); strings.Contains(other, "closed file") {
		t.Errorf("rule dns's card shows web's problem:\n%s", other)
	}
	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(unhealthyShotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	ctl.setHealth(true, "")
	waitFor(t, tab, "the healthy pill", `document.getElementById('health').textContent === 'healthy'`)
	if text := eval[string](t, tab, `document.body.innerText`); strings.Contains(text, "closed file") {
		t.Errorf("the reason stays on the page once healthy:\n%s", text)
	}
	// The browser logs each 503 from /healthz as a failed load; anything
	// else is a problem.
	for _, p := range console.take() {
		if !strings.Contains(p, "status of 503 (Service Unavailable)") || !strings.HasSuffix(p, "/healthz") {
			t.Errorf("the dashboard wrote to the console while unhealthy: %s", p)
		}
	}
}

// TestDashboardShowsRoutesAndCertificates loads the dashboard of a server
// with a routed rule (see edgeRule) whose route serves a certificate that
// expires in 5 days and whose own certificate has expired, and checks that
// the rule's card shows its routes with their matchers, backends and
// connections, its default route, and the certificates' expiry with a
// warning and an error.
func TestDashboardShowsRoutesAndCertificates(t *testing.T) {
	ctl := newTestController(t)
	now := time.Now()
	soon, gone := now.Add(5*24*time.Hour+time.Hour), now.Add(-49*time.Hour)
	ctl.mu.Lock()
	ctl.rules = append(ctl.rules, edgeRule(soon, gone))
	ctl.mu.Unlock()
	base := startAdmin(t, ctl, "")

	tab := newBrowser(t, 90*time.Second)
	var console consoleLog
	console.listen(t, tab)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	waitFor(t, tab, "the edge rule's card", jsPolls+` >= 1 && document.querySelector('[data-rule="edge"]') !== null`)

	const edge = `document.querySelector('[data-rule="edge"]')`
	routes := eval[[]string](t, tab, `Array.from(`+edge+`.querySelectorAll('[data-route]')).map(r => r.dataset.route)`)
	if !slices.Equal(routes, []string{"app", "ssh"}) {
		t.Fatalf("routes shown %v, want [app ssh]", routes)
	}
	for route, wants := range map[string][]string{
		"app": {"sni app.example.com, *.example.org", "alpn h2", "least-conn", "7 connections"},
		"ssh": {"host www.example.com", "detect ssh", "2 connections", "no backends"},
	} {
		text := eval[string](t, tab, edge+`.querySelector('[data-route="`+route+`"]').innerText`)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("route %s shows %q, want it to say %q", route, text, want)
			}
		}
	}
	for addr, want := range map[string]string{"10.0.0.5:443": "up", "10.0.0.6:443": "down"} {
		got := eval[string](t, tab, edge+`.querySelector('[data-route="app"] li[data-backend="`+addr+`"] .state').textContent`)
		if got != want {
			t.Errorf("route app's backend %s shown %q, want %q", addr, got, want)
		}
	}
	if text := eval[string](t, tab, edge+`.querySelector('.default-route').innerText`); !strings.Contains(text, "default route") || !strings.Contains(text, "4 connections") {
		t.Errorf("default route shown as %q, want it named with its 4 connections", text)
	}
	checkCertificatesShown(t, tab, soon, gone)
	if n := eval[int](t, tab, `document.querySelectorAll('[data-rule="web"] [data-route], [data-rule="web"] [data-cert]').length`); n != 0 {
		t.Errorf("rule web without routes shows %d routes or certificates", n)
	}
	// web: 1 of 2 up; dns: 1 of 1; edge: default 0 of 1, app 1 of 2, ssh none.
	if got := eval[string](t, tab, `document.getElementById('t-backends').textContent`); got != "3 / 6" {
		t.Errorf("backends up tile %q, want 3 / 6 (routes' backends counted)", got)
	}
	ctl.setRouteConnections("edge", "app", 8)
	waitFor(t, tab, "route app's new count", edge+`.querySelector('[data-route="app"]').innerText.includes('8 connections')`)

	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(routesShotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := console.take(); len(p) > 0 {
		t.Errorf("the dashboard wrote to the console:\n%s", strings.Join(p, "\n"))
	}
}

// checkCertificatesShown checks the edge rule's certificates: the route's,
// expiring at soon (in 5 days), with a warning, and the rule's, expired at
// gone, with an error; both with their date.
func checkCertificatesShown(t *testing.T, tab context.Context, soon, gone time.Time) {
	t.Helper()
	for _, c := range []struct {
		name, class string
		wants       []string
	}{
		{"app.example.com", "warn", []string{"route app", soon.UTC().Format("2006-01-02"), "5 days left"}},
		{"edge.example.net", "bad", []string{gone.UTC().Format("2006-01-02"), "expired 2 days ago"}},
	} {
		sel := `document.querySelector('[data-rule="edge"] [data-cert="` + c.name + `"]')`
		if !eval[bool](t, tab, sel+` !== null`) {
			t.Errorf("certificate %s not shown", c.name)
			continue
		}
		if class := eval[string](t, tab, sel+`.className`); !slices.Contains(strings.Fields(class), c.class) {
			t.Errorf("certificate %s has class %q, want %s", c.name, class, c.class)
		}
		text := eval[string](t, tab, sel+`.innerText`)
		for _, want := range c.wants {
			if !strings.Contains(text, want) {
				t.Errorf("certificate %s shown as %q, want it to say %q", c.name, text, want)
			}
		}
	}
}
