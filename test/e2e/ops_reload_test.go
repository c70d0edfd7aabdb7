package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// reloadModel is what the reload test's config says; the test changes one
// thing at a time and renders the config from it. Rules alpha and beta keep
// their addresses, gamma moves between two, delta comes and goes.
type reloadModel struct {
	admin, alpha, beta, delta string
	gamma                     [2]string // gamma listens on gamma[gammaAt]
	gammaAt                   int
	backends                  [3]string
	alphaWide                 bool // alpha: backends [b0] or [b0, b1]
	betaLeast                 bool // beta: balance round-robin or least-conn
	betaIdleLong              bool // beta: idle_timeout 1m or 2m
	deltaOn                   bool // delta is in the config
	workers                   int  // [defaults] workers; zero: the key is left out
}

// ruleText is one [[rule]] table of the config.
type ruleText struct{ name, text string }

// rules renders the rules, in config order.
func (m reloadModel) rules() []ruleText {
	b := m.backends
	alphaBackends := fmt.Sprintf("[%q]", b[0])
	if m.alphaWide {
		alphaBackends = fmt.Sprintf("[%q, %q]", b[0], b[1])
	}
	balance, idle := "round-robin", "1m"
	if m.betaLeast {
		balance = "least-conn"
	}
	if m.betaIdleLong {
		idle = "2m"
	}
	out := []ruleText{
		{"alpha", fmt.Sprintf("name = \"alpha\"\nlisten = %q\nbackends = %s\n", m.alpha, alphaBackends)},
		{"beta", fmt.Sprintf("name = \"beta\"\nlisten = %q\nbackends = [%q, %q]\nbalance = %q\nidle_timeout = %q\n",
			m.beta, b[1], b[2], balance, idle)},
		{"gamma", fmt.Sprintf("name = \"gamma\"\nlisten = %q\nbackends = [%q]\n", m.gamma[m.gammaAt], b[2])},
	}
	if m.deltaOn {
		out = append(out, ruleText{"delta", fmt.Sprintf("name = \"delta\"\nlisten = %q\nbackends = [%q]\n", m.delta, b[0])})
	}
	return out
}

// render writes the config with the given rules.
func (m reloadModel) render(rules []ruleText) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "log_format = \"json\"\nadmin = %q\n\n[defaults]\nconnect_timeout = \"2s\"\ndrain_timeout = \"2m\"\n", m.admin)
	if m.workers > 0 {
		fmt.Fprintf(&sb, "workers = %d\n", m.workers)
	}
	for _, r := range rules {
		sb.WriteString("\n[[rule]]\n" + r.text)
	}
	return sb.String()
}

// config renders the whole config file.
func (m reloadModel) config() string { return m.render(m.rules()) }

// listens returns where each rule listens.
func (m reloadModel) listens() map[string]string {
	out := map[string]string{"alpha": m.alpha, "beta": m.beta, "gamma": m.gamma[m.gammaAt]}
	if m.deltaOn {
		out["delta"] = m.delta
	}
	return out
}

// step makes the i-th change: alpha's backends, adding delta, beta's
// balance or idle timeout, moving gamma, removing delta, and again.
func (m *reloadModel) step(i int) {
	switch i % 5 {
	case 0:
		m.alphaWide = !m.alphaWide
	case 1:
		m.deltaOn = true
	case 2:
		if i/5%2 == 0 {
			m.betaLeast = !m.betaLeast
		} else {
			m.betaIdleLong = !m.betaIdleLong
		}
	case 3:
		m.gammaAt = 1 - m.gammaAt
	case 4:
		m.deltaOn = false
	}
}

// expectReport is what a reload from before to after must report, found by
// comparing the rendered rules.
func expectReport(before, after reloadModel) reloadReport {
	old := map[string]string{}
	for _, r := range before.rules() {
		old[r.name] = r.text
	}
	var rep reloadReport
	for _, r := range after.rules() {
		text, ok := old[r.name]
		switch {
		case !ok:
			rep.Added = append(rep.Added, r.name)
		case text != r.text:
			rep.Changed = append(rep.Changed, r.name)
		default:
			rep.Unchanged = append(rep.Unchanged, r.name)
		}
		delete(old, r.name)
	}
	for name := range old {
		rep.Removed = append(rep.Removed, name)
	}
	return rep
}

// sameNames reports whether a and b hold the same names in any order.
func sameNames(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// movableAddrs returns two addresses with one port on 127.0.0.2 and
// 127.0.0.3, for a rule that moves between them, and one on 127.0.0.4 for
// a rule that comes and goes. Nothing else in these tests listens on or
// connects from those IPs, so the ports stay free while sluice does not
// hold them, which a port on 127.0.0.1 would not (any client's ephemeral
// port could take it).
func movableAddrs(t *testing.T) ([2]string, string) {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		ln2, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatalf("listen on 127.0.0.2: %v", err)
		}
		port := ln2.Addr().(*net.TCPAddr).Port
		ln3, err := net.Listen("tcp", fmt.Sprintf("127.0.0.3:%d", port))
		_ = ln2.Close()
		if err != nil {
			continue
		}
		_ = ln3.Close()
		ln4, err := net.Listen("tcp", "127.0.0.4:0")
		if err != nil {
			t.Fatalf("listen on 127.0.0.4: %v", err)
		}
		_ = ln4.Close()
		return [2]string{ln2.Addr().String(), ln3.Addr().String()}, ln4.Addr().String()
	}
	t.Fatalf("found no port free on both 127.0.0.2 and 127.0.0.3")
	return [2]string{}, ""
}

// reloader reloads a running sluice and reads what it reports.
type reloader struct {
	t      *testing.T
	p      *proc
	api    *adminClient
	path   string
	cursor int // log index after the last "reloaded" line seen
	done   int // successful reloads so far
}

// reload applies text by the admin API or by SIGHUP and checks that the
// reload reports want: the API's JSON, and in both cases the log line.
func (r *reloader) reload(text string, viaAPI bool, want reloadReport) {
	r.t.Helper()
	rewriteFile(r.t, r.path, text)
	how := "SIGHUP"
	if viaAPI {
		how = "POST /api/v1/reload"
		var got reloadReport
		r.api.call(http.MethodPost, "/api/v1/reload", http.StatusOK, &got)
		if !sameNames(got.Added, want.Added) || !sameNames(got.Removed, want.Removed) ||
			!sameNames(got.Changed, want.Changed) || !sameNames(got.Unchanged, want.Unchanged) {
			r.t.Errorf("reload %d by %s reported %v, want %v", r.done+1, how, got, want)
		}
	} else {
		r.p.signal(syscall.SIGHUP)
	}
	rec, next := r.p.waitFrom(r.cursor, "reloaded", isMsg("reloaded"))
	r.cursor, r.done = next, r.done+1
	got := reloadReport{Added: strs(rec["added"]), Removed: strs(rec["removed"]), Changed: strs(rec["changed"])}
	if !sameNames(got.Added, want.Added) || !sameNames(got.Removed, want.Removed) ||
		!sameNames(got.Changed, want.Changed) || rec.num("unchanged") != int64(len(want.Unchanged)) {
		r.t.Errorf("reload %d by %s logged %v, want %v", r.done, how, rec, want)
	}
}

// strs converts a JSON array of strings from a log record.
func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// checkRules compares GET /api/v1/rules with the model.
func checkRules(t *testing.T, api *adminClient, m reloadModel) {
	t.Helper()
	rules, listens := api.rules(), m.listens()
	if len(rules) != len(listens) {
		t.Errorf("API lists %d rules, want %d: %v", len(rules), len(listens), rules)
	}
	for name, addr := range listens {
		if got, ok := rules[name]; !ok || got.Listen != addr {
			t.Errorf("API: rule %s: %+v, want it listening on %s", name, got, addr)
		}
	}
	wantBalance, wantBackends := "round-robin", 1
	if m.betaLeast {
		wantBalance = "least-conn"
	}
	if m.alphaWide {
		wantBackends = 2
	}
	if got := rules["beta"].Balance; got != wantBalance {
		t.Errorf("API: beta balances %s, want %s", got, wantBalance)
	}
	if got := len(rules["alpha"].Backends); got != wantBackends {
		t.Errorf("API: alpha has %d backends, want %d", got, wantBackends)
	}
}

// TestReloadUnderLoad reloads sluice 20 times, alternately by SIGHUP and by
// the admin API, while 8 clients connect in a loop and 4 long-lived streams
// run both ways. Each reload changes one thing: a rule's backends, balance
// or idle timeout, adding or removing a rule, or moving a rule's listen
// address back and forth. No connection to a rule whose address stays may
// fail, nor one to a moving rule while its address is settled; every stream
// must come through byte-exact, the one on a removed rule included; every
// reload must report what it changed. Then bad configs are reloaded both
// ways: nothing changes, the traffic goes on, and the errors are reported.
func TestReloadUnderLoad(t *testing.T) { testReloadUnderLoad(t, 0) }

// TestReloadUnderLoadTwoWorkers is TestReloadUnderLoad with two event
// loops accepting for every rule (workers = 2): the listeners that a
// reload moves or removes leave both loops' sets, and not one connection
// to a rule that stays fails.
func TestReloadUnderLoadTwoWorkers(t *testing.T) { testReloadUnderLoad(t, 2) }

// testReloadUnderLoad runs TestReloadUnderLoad with the given workers.
func testReloadUnderLoad(t *testing.T, workers int) {
	t.Parallel()
	m := reloadModel{workers: workers}
	for i := range m.backends {
		m.backends[i] = startBackend(t, echo).addr
	}
	m.gamma, m.delta = movableAddrs(t)
	p, _, path := launchOps(t, 3, func(a []string) string {
		m.admin, m.alpha, m.beta = a[0], a[1], a[2]
		return m.config()
	}, nil)
	p.allowErrors("the test reloads broken configs, which sluice rejects")
	r := &reloader{t: t, p: p, api: newAdmin(t, m.admin, ""), path: path}

	book := newAddrBook(m.listens())
	fixed := map[string]bool{"alpha": true, "beta": true}
	l := startLoad(t, book, []string{"alpha", "alpha", "beta", "beta", "gamma", "gamma", "delta", "delta"}, fixed)
	var streams []*stream
	for _, name := range []string{"alpha", "beta", "gamma"} {
		streams = append(streams, l.addStream(name, m.listens()[name]))
	}
	l.waitProgress(l.snapshot(), 3, 64<<10)

	for i := 0; i < 20; i++ {
		before := m
		m.step(i)
		from := l.snapshot()
		book.begin()
		r.reload(m.config(), i%2 == 0, expectReport(before, m))
		book.commit(m.listens())
		checkRules(t, r.api, m)
		if m.deltaOn && len(streams) == 3 {
			// Opened on the first delta; it lives on through delta's removals.
			streams = append(streams, l.addStream("delta", m.delta))
		}
		l.waitProgress(from, 3, 64<<10)
	}

	rejectBadConfig(t, r, l, m)

	l.halt()
	l.checkChurn()
	// SIGTERM with the streams still flowing: the drain waits for them,
	// byte-exact, whichever loop relays them.
	p.signal(syscall.SIGTERM)
	p.wait("the drain", isMsg("stopping: draining live connections"))
	for _, s := range streams {
		n := s.finish(t)
		rec := s.access(p)
		if rec.str("end") != "eof" || rec.num("up") != n || rec.num("down") != n {
			t.Errorf("stream %s: access line %v: want end=eof up=down=%d", s.name, rec, n)
		}
		t.Logf("stream %s moved %d bytes each way", s.name, n)
	}
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v) after SIGTERM, want 0", code, err)
	}
}

// brokenReload renders the model's config with gamma moved and two errors: a
// bad duration in alpha and an unknown key in beta. It returns the text and
// the errors sluice must report for it at path, in line order.
func brokenReload(m reloadModel, path string) (string, []string) {
	moved := m
	moved.gammaAt = 1 - m.gammaAt
	rules := moved.rules()
	rules[0].text += "idle_timeout = \"5 minutes\"\n"
	rules[1].text += "colour = \"blue\"\n"
	text := moved.render(rules)
	lines := strings.Split(text, "\n")
	lineOf := func(s string) int { return slices.Index(lines, s) + 1 }
	return text, []string{
		fmt.Sprintf(`%s:%d: rule "alpha": idle_timeout "5 minutes": invalid duration (want e.g. "90s", "5m", "1h")`,
			path, lineOf(`idle_timeout = "5 minutes"`)),
		fmt.Sprintf(`%s:%d: rule "beta": unknown key "colour"`, path, lineOf(`colour = "blue"`)),
	}
}

// rejectBadConfig reloads a bad config by SIGHUP and by the API and checks
// that both say why, the API with 400 and every error, and that nothing
// changed: the same rules, gamma where it was, and traffic flowing.
func rejectBadConfig(t *testing.T, r *reloader, l *load, m reloadModel) {
	t.Helper()
	text, want := brokenReload(m, r.path)
	rules := r.api.rules()
	from := l.snapshot()
	rewriteFile(t, r.path, text)

	r.p.signal(syscall.SIGHUP)
	rejected := func(rec record) bool { return rec.str("msg") == "reload rejected: config unchanged" }
	at := r.cursor
	for _, w := range want {
		var rec record
		rec, at = r.p.waitFrom(at, "reload rejected", rejected)
		if rec.str("error") != w {
			t.Errorf("SIGHUP with a bad config logged %v, want error %q", rec, w)
		}
	}

	code, body := r.api.do(http.MethodPost, "/api/v1/reload")
	var failure struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(body, &failure); code != http.StatusBadRequest || err != nil ||
		!slices.Equal(failure.Errors, want) || failure.Error != strings.Join(want, "\n") {
		t.Errorf("POST /api/v1/reload with a bad config: %d %s\nwant 400 with errors %q", code, body, want)
	}
	// Logged after the reload was tried: every line before it is in now.
	rec, _ := r.p.waitFrom(at, "admin: reload failed", isMsg("admin: reload failed; nothing changed"))
	if rec.num("errors") != int64(len(want)) {
		t.Errorf("API reload failure logged %v, want errors=%d", rec, len(want))
	}

	if n := r.p.count(isMsg("reloaded")); n != r.done {
		t.Errorf("sluice logged %d reloads, want %d: a bad config was applied", n, r.done)
	}
	if after := r.api.rules(); !sameRules(rules, after) {
		t.Errorf("rules changed by a rejected reload:\nbefore %+v\nafter  %+v", rules, after)
	}
	c, err := net.DialTimeout("tcp", m.gamma[1-m.gammaAt], waitLimit)
	if err == nil {
		_ = c.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s, where the rejected config moves gamma: %v, want connection refused", m.gamma[1-m.gammaAt], err)
	}
	l.waitProgress(from, 3, 64<<10)
}

// sameRules compares two rule listings by what a config sets: names,
// addresses, balance and backends (not counters).
func sameRules(a, b map[string]apiRule) bool {
	if len(a) != len(b) {
		return false
	}
	for name, ra := range a {
		rb, ok := b[name]
		if !ok || ra.Listen != rb.Listen || ra.Balance != rb.Balance || len(ra.Backends) != len(rb.Backends) {
			return false
		}
		for i := range ra.Backends {
			if ra.Backends[i].Address != rb.Backends[i].Address {
				return false
			}
		}
	}
	return true
}
