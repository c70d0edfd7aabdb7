package admin

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// dialogs answers the page's confirm() dialogs as told and keeps their
// messages.
type dialogs struct {
	mu       sync.Mutex
	accept   bool
	messages []string
}

func (d *dialogs) set(accept bool) {
	d.mu.Lock()
	d.accept = accept
	d.mu.Unlock()
}

func (d *dialogs) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.messages...)
}

// TestDashboardSetsBackendState: a backend's Drain button asks for
// confirmation; dismissed, nothing changes; confirmed, the PUT goes out
// and the page shows the new state, with a Ready button to undo it. A
// route's unix backend, whose address has slashes, is set the same way.
func TestDashboardSetsBackendState(t *testing.T) {
	const token = "browser-state-token"
	ctl := newTestController(t)
	ctl.rules[0].Backends[0].State = "ready"
	ctl.rules[0].Backends[1].State = "ready"
	ctl.rules = append(ctl.rules, RuleStatus{Name: "edge", Listen: "127.0.0.1:8443", Protocol: "tcp", Balance: "first",
		Routes: []RouteStatus{{Name: "app", Balance: "first", Backends: []BackendStatus{{Address: "unix:/run/app.sock", State: "ready", Up: true, Weight: 1}}}}})
	base := startAdmin(t, ctl, token)
	tab := newBrowser(t, 90*time.Second)
	var console consoleLog
	console.listen(t, tab)
	d := &dialogs{}
	err := chromedp.Listen(tab, func(ev any) {
		if e, ok := ev.(*cdppage.EventJavascriptDialogOpening); ok {
			d.mu.Lock()
			d.messages = append(d.messages, e.Message)
			accept := d.accept
			d.mu.Unlock()
			go chromedp.Call(tab, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: accept})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	signInProblems := signIn(t, tab, &console, base, token)

	addr := "10.0.0.6:80"
	li := fmt.Sprintf(`article[data-rule="web"] li[data-backend="%s"]`, addr)
	drain := li + ` button.set-state[data-state="drain"]`
	waitFor(t, tab, "the Drain button", `document.querySelector('`+drain+`') !== null`)

	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(drain))); err != nil {
		t.Fatalf("click Drain: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(d.seen()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Drain asked for no confirmation")
		}
	}
	polls := eval[float64](t, tab, jsPolls)
	waitFor(t, tab, "two more polls", fmt.Sprintf(`%s >= %v`, jsPolls, polls+2))
	if b, _ := ctl.Backends("web", ""); b[1].State != "ready" {
		t.Fatalf("a dismissed Drain changed the backend: %+v", b[1])
	}
	if msg := d.seen()[0]; !strings.Contains(msg, "Drain backend "+addr) {
		t.Errorf("the confirmation says %q", msg)
	}

	d.set(true)
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(drain))); err != nil {
		t.Fatalf("click Drain: %v", err)
	}
	waitFor(t, tab, "the backend shown drained", `(function () {
		var li = document.querySelector('`+li+`');
		return li !== null && li.dataset.state === 'drain' && li.querySelector('.admin-state').textContent === 'drain' &&
			li.querySelector('button.set-state[data-state="ready"]') !== null &&
			li.querySelector('button.set-state[data-state="drain"]') === null;
	})()`)
	if b, _ := ctl.Backends("web", ""); b[1].State != "drain" {
		t.Fatalf("the controller has %+v after a confirmed Drain", b[1])
	}

	unix := `article[data-rule="edge"] .rt[data-route="app"] li[data-backend="unix:/run/app.sock"]`
	maint := unix + ` button.set-state[data-state="maint"]`
	waitFor(t, tab, "the route backend's Maint button", `document.querySelector('`+maint+`') !== null`)
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(maint))); err != nil {
		t.Fatalf("click Maint: %v", err)
	}
	waitFor(t, tab, "the route backend shown in maintenance", `document.querySelector('`+unix+`').dataset.state === 'maint'`)
	if b, _ := ctl.Backends("edge", "app"); b[0].State != "maint" {
		t.Fatalf("the route's backend is %+v", b[0])
	}
	if p := append(signInProblems, console.take()...); len(p) > 0 {
		t.Errorf("the dashboard wrote to the console:\n%s", strings.Join(p, "\n"))
	}
}
