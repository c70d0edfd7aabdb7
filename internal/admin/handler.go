package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sluice/internal/conntrack"
)

// Options configure the admin handler. Only Controller is required.
type Options struct {
	// Controller is the running server the API reads and controls.
	Controller Controller
	// Gatherer serves GET /metrics, usually the *prometheus.Registry given to
	// metrics.New. Nil: /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Token, if not empty, is required as "Authorization: Bearer TOKEN" on
	// every request. Empty: no authentication, and the server must then
	// listen on loopback only (Listen and Serve refuse anything else).
	Token string
	// Status, if set, is what GET /api/v1/status reports (the config's
	// source, say); nil: it reports {"config_source": {"source": "file"}}.
	Status func() any
	// Fleet, if set, lists the instances of the fleet this sluice is in,
	// for GET /api/v1/fleet and the dashboard's fleet panel. Nil: not in a
	// fleet; GET /api/v1/fleet answers 404 and the panel stays hidden.
	Fleet func(ctx context.Context) (Fleet, error)
	// Logger receives a line for every reload and closed connection. Nil:
	// nothing is logged.
	Logger *slog.Logger
	// HistoryInterval is how often a Server samples every rule's counters
	// for GET /api/v1/history, which keeps HistoryWindow of them. Zero:
	// every 5 s. A handler from NewHandler alone samples nothing.
	HistoryInterval time.Duration
}

// handler serves the admin routes.
type handler struct {
	ctl    Controller
	logger *slog.Logger
	page   *page
	hist   *history // sampled only when a Server runs it
	status func() any
	fleet  func(ctx context.Context) (Fleet, error)
}

// route is one method and path the API serves.
type route struct {
	method, path string
	serve        http.HandlerFunc
}

// NewHandler returns the admin API, metrics and dashboard as one handler,
// with authentication, DNS-rebinding and cross-origin protection applied.
// It panics if o.Controller is nil, which is a programming error.
func NewHandler(o Options) http.Handler {
	g, _ := newGuard(o)
	return g
}

// newGuard is NewHandler's handler as the guard it is, for a Server that
// may change the token later, with the history it serves, for a Server to
// sample.
func newGuard(o Options) (*guard, *history) {
	if o.Controller == nil {
		panic("admin: NewHandler: Options.Controller is nil")
	}
	h := &handler{ctl: o.Controller, logger: o.Logger, page: newPage(), hist: newHistory(o.Controller, o.HistoryInterval), status: o.Status,
		fleet: o.Fleet}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	metricsHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "metrics are not enabled")
	})
	if o.Gatherer != nil {
		metricsHandler = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn),
			ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP
	}
	routes := []route{
		{http.MethodGet, "/{$}", h.page.serveDashboard},
		{http.MethodGet, "/metrics", metricsHandler},
		{http.MethodGet, "/healthz", h.healthz},
		{http.MethodGet, "/api/v1/rules", h.rules},
		{http.MethodGet, "/api/v1/rules/{rule}/backends", h.backends},
		{http.MethodPut, "/api/v1/rules/{rule}/backends/{address}", h.setBackend},
		{http.MethodGet, "/api/v1/rules/{rule}/routes/{route}/backends", h.backends},
		{http.MethodPut, "/api/v1/rules/{rule}/routes/{route}/backends/{address}", h.setBackend},
		{http.MethodGet, "/api/v1/history", h.hist.serveHistory},
		{http.MethodGet, "/api/v1/status", h.serveStatus},
		{http.MethodGet, "/api/v1/fleet", h.serveFleet},
		{http.MethodGet, "/api/v1/connections", h.connections},
		{http.MethodDelete, "/api/v1/connections/{id}", h.closeConnection},
		{http.MethodPost, "/api/v1/reload", h.reload},
	}
	mux := http.NewServeMux()
	register(mux, routes)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	return protect(mux, o.Token, h.page).(*guard), h.hist
}

// register adds routes to mux, and for each path a fallback that answers
// any other method with 405 and an Allow header listing the right ones.
func register(mux *http.ServeMux, routes []route) {
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, rt.serve)
		if allowed[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed,
				fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		})
	}
}

// healthz answers 200 "ok" when every listener is up, else 503 and why.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ok, reason := h.ctl.Healthy()
	if ok {
		io.WriteString(w, "ok\n")
		return
	}
	if reason == "" {
		reason = "unhealthy"
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, reason+"\n")
}

// rules lists the rules with their routes, backends, certificates and
// counters.
func (h *handler) rules(w http.ResponseWriter, r *http.Request) {
	rules := nonNil(h.ctl.Rules())
	for i := range rules {
		rules[i].Backends = nonNil(rules[i].Backends)
		for j := range rules[i].Routes {
			rules[i].Routes[j].Backends = nonNil(rules[i].Routes[j].Backends)
		}
	}
	writeJSON(w, http.StatusOK, ruleList{Rules: rules})
}

// connections lists live connections, optionally of one rule
// (?rule=NAME) and at most N of them, lowest ids first (?limit=N).
func (h *handler) connections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := -1
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number of 0 or more", s))
			return
		}
		limit = n
	}
	conns := h.ctl.Connections()
	if rule := q.Get("rule"); rule != "" {
		conns = slices.DeleteFunc(conns, func(c conntrack.Snapshot) bool { return c.Rule != rule })
	}
	list := connectionList{Now: time.Now().UTC(), Total: len(conns)}
	if limit >= 0 && len(conns) > limit {
		conns = conns[:limit]
	}
	list.Connections = nonNil(conns)
	writeJSON(w, http.StatusOK, list)
}

// closeConnection stops one connection by id.
func (h *handler) closeConnection(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("connection id %q: want a positive whole number", raw))
		return
	}
	if !h.ctl.CloseConnection(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("connection %d: no such live connection", id))
		return
	}
	h.logger.Info("admin: connection closed", "id", id, "by", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

// reload re-reads the config and reports what changed, or every error.
func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	rep, err := h.ctl.Reload()
	if err != nil {
		lines := errorLines(err)
		h.logger.Warn("admin: reload failed; nothing changed", "by", r.RemoteAddr, "errors", len(lines), "error", err.Error())
		writeJSON(w, http.StatusBadRequest, reloadFailure{Error: strings.Join(lines, "\n"), Errors: lines})
		return
	}
	rep.Added, rep.Removed = nonNil(rep.Added), nonNil(rep.Removed)
	rep.Changed, rep.Unchanged = nonNil(rep.Changed), nonNil(rep.Unchanged)
	h.logger.Info("admin: reloaded", "by", r.RemoteAddr,
		"added", rep.Added, "removed", rep.Removed, "changed", rep.Changed, "unchanged", len(rep.Unchanged))
	writeJSON(w, http.StatusOK, rep)
}

// errorLines splits an error (often an errors.Join of several) into its
// non-empty lines.
func errorLines(err error) []string {
	var lines []string
	for l := range strings.SplitSeq(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{"reload failed"}
	}
	return lines
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// writeError writes {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// serveStatus reports where the config comes from (Options.Status).
func (h *handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	if h.status == nil {
		writeJSON(w, http.StatusOK, map[string]any{"config_source": map[string]string{"source": "file"}})
		return
	}
	writeJSON(w, http.StatusOK, h.status())
}
