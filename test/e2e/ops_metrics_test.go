package e2e

import (
	"fmt"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestReloadMetrics: the real binary exports sluice_build_info, counts a
// good and a bad reload (SIGHUP and the API) in
// sluice_config_reloads_total, and moves the last-success time only for
// the good one; its TCP-only rule has no UDP series.
func TestReloadMetrics(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	config := func(addrs []string) string {
		return fmt.Sprintf("log_format = \"json\"\nadmin = %q\n\n[[rule]]\nname = \"web\"\nlisten = %q\nbackends = [%q]\n",
			addrs[0], addrs[1], be.addr)
	}
	started := time.Now()
	p, addrs, path := launchOps(t, 2, config, nil)
	p.allowErrors("the test reloads a broken config")
	api := newAdmin(t, addrs[0], "")

	m := scrape(t, api)
	if v := mustMetric(t, m, "sluice_build_info", map[string]string{"version": "dev", "goversion": runtime.Version()}); v != 1 {
		t.Errorf("sluice_build_info = %v, want 1", v)
	}
	reloads := func(result string) float64 {
		return mustMetric(t, scrape(t, api), "sluice_config_reloads_total", map[string]string{"result": result})
	}
	loaded := func() float64 {
		return mustMetric(t, scrape(t, api), "sluice_config_last_reload_success_timestamp_seconds", map[string]string{})
	}
	if ok, failed := reloads("ok"), reloads("error"); ok != 0 || failed != 0 {
		t.Errorf("reloads at start: ok %v, failed %v; want 0 and 0", ok, failed)
	}
	atStart := loaded()
	if atStart < float64(started.Unix()-1) || atStart > float64(time.Now().Unix()+1) {
		t.Errorf("last load time %v at start, not between %v and now", atStart, started.Unix())
	}
	if _, ok := metricValue(m, "sluice_udp_sessions_active", map[string]string{"rule": "web"}); ok {
		t.Error("the TCP-only rule web exports sluice_udp_sessions_active")
	}

	p.signal(syscall.SIGHUP)
	p.wait("the good reload", isMsg("reloaded"))
	waitMetric(t, func() float64 { return reloads("ok") }, 1)
	if after := loaded(); after <= atStart {
		t.Errorf("last load time %v after a good reload, want later than the start's %v", after, atStart)
	}
	good := loaded()

	rewriteFile(t, path, config(addrs)+"[[rule]]\nname = \"web\"\n") // a duplicate, unfinished rule
	if code, body := api.do(http.MethodPost, "/api/v1/reload"); code != http.StatusBadRequest {
		t.Fatalf("POST /api/v1/reload of a broken config: %d %s, want 400", code, body)
	}
	if failed, ok := reloads("error"), reloads("ok"); failed != 1 || ok != 1 {
		t.Errorf("after the bad reload: failed %v, ok %v; want 1 and 1", failed, ok)
	}
	if after := loaded(); after != good {
		t.Errorf("last load time moved from %v to %v on a failed reload", good, after)
	}
}

// waitMetric waits (within waitLimit) until get returns want.
func waitMetric(t *testing.T, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		v := get()
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric is %v, want %v", v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
