package admin

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sourceStatus is what Options.Status returns in TestDashboardShowsConfigSource:
// GET /api/v1/status's answer for the source it holds.
type sourceStatus struct {
	src atomic.Pointer[map[string]any]
}

// set makes src the config source reported from now on.
func (s *sourceStatus) set(src map[string]any) { s.src.Store(&src) }

// status implements Options.Status.
func (s *sourceStatus) status() any {
	return map[string]any{"version": "test", "pid": 1, "config_source": *s.src.Load()}
}

// sourceShotPath is where the test leaves a picture of the dashboard while
// etcd is lost.
const sourceShotPath = "/tmp/dashboard-source.png"

// jsSource is the config source line in the dashboard's header: its text,
// and whether it has the warning style.
const jsSource = `(function () {
	var el = document.getElementById('config-source');
	return el === null ? null : { text: el.hidden ? '' : el.textContent, warn: el.classList.contains('warn') };
})()`

// TestDashboardShowsConfigSource: the dashboard's header says where the
// config comes from (GET /api/v1/status) and follows it poll by poll: a
// file with its path; etcd with the revision it runs, connected; etcd lost,
// in the warning style, still serving that revision; etcd back.
func TestDashboardShowsConfigSource(t *testing.T) {
	ctl := newTestController(t)
	var st sourceStatus
	st.set(map[string]any{"source": "file", "path": "/etc/sluice/sluice.toml"})
	base := startAdminWith(t, Options{Controller: ctl, Gatherer: ctl.reg, Status: st.status})
	tab := newBrowser(t, 90*time.Second)
	var console consoleLog
	console.listen(t, tab)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "two polls", jsPolls+` >= 2`)

	etcd := func(connected bool) map[string]any {
		return map[string]any{"source": "etcd", "endpoints": []string{"http://127.0.0.1:2379"}, "key": "/sluice/config",
			"connected": connected, "revision": 12, "seen_revision": 12}
	}
	for _, step := range []struct {
		what string
		src  map[string]any
		want string
		warn bool
	}{
		{"a file", map[string]any{"source": "file", "path": "/etc/sluice/sluice.toml"}, "config: file /etc/sluice/sluice.toml", false},
		{"flags", map[string]any{"source": "flags"}, "config: flags", false},
		{"etcd, connected", etcd(true), "config: etcd, revision 12, connected", false},
		{"etcd lost", etcd(false), "config: etcd disconnected \u2014 serving revision 12", true},
		{"etcd back", etcd(true), "config: etcd, revision 12, connected", false},
	} {
		st.set(step.src)
		// Two polls after the switch: the first may have asked before it.
		polls := eval[float64](t, tab, jsPolls)
		waitFor(t, tab, "two polls after the switch to "+step.what, fmt.Sprintf(`%s >= %v`, jsPolls, polls+2))
		got := eval[map[string]any](t, tab, jsSource)
		if got == nil {
			t.Fatalf("%s: the dashboard has no #config-source", step.what)
		}
		if text, _ := got["text"].(string); text != step.want {
			t.Errorf("%s: the header says %q, want %q", step.what, text, step.want)
		}
		if warn, _ := got["warn"].(bool); warn != step.warn {
			t.Errorf("%s: warning style %v, want %v", step.what, warn, step.warn)
		}
		if step.warn {
			shot, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			if err := os.WriteFile(sourceShotPath, shot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p := console.take(); len(p) > 0 {
		t.Errorf("the dashboard wrote to the console:\n%s", strings.Join(p, "\n"))
	}
}
