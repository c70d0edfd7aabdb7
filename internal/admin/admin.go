// Package admin serves sluice's admin HTTP API, its Prometheus metrics and
// its live dashboard.
//
// The API reads and controls the running server through the Controller
// interface, which the server implements; the package opens no sockets but
// its own listener. Routes:
//
//	GET    /                          the dashboard (one page, assets embedded)
//	GET    /metrics                   Prometheus metrics of the given Gatherer
//	GET    /healthz                   200 "ok", or 503 with the reason
//	GET    /api/v1/rules              rules with routes, backends, health, certificates and counters
//	GET    /api/v1/rules/{rule}/backends            a rule's backends, with state and weight
//	PUT    /api/v1/rules/{rule}/backends/{address}  set a backend's state or weight
//	GET    /api/v1/rules/{rule}/routes/{route}/backends            (the same for a route's)
//	PUT    /api/v1/rules/{rule}/routes/{route}/backends/{address}
//	GET    /api/v1/history            each rule's counters over the last 5 minutes, for the charts
//	GET    /api/v1/connections        live connections (?rule=NAME, ?limit=N)
//	DELETE /api/v1/connections/{id}   close one connection: 204, or 404
//	POST   /api/v1/reload             reload: 200 with what changed, 400 with every error
//
// A wrong method gets 405 with an Allow header; errors are JSON objects
// {"error": "..."}.
//
// With a token, every request, the dashboard and /metrics included, needs
// "Authorization: Bearer TOKEN", compared in constant time. A browser cannot
// send that header when it opens a page, so a GET / without it is answered
// with 401 and a small sign-in page: it takes the token from the URL
// fragment (http://host:port/#token=TOKEN, which browsers never send to the
// server) or from a form, fetches the dashboard with the header, and the
// dashboard sends the header with every request it makes. The 401 page holds
// no data.
//
// Without a token the admin server must listen on loopback only. To keep a
// web page from reaching it through the operator's browser, requests whose
// Host is a DNS name other than localhost are refused (DNS rebinding), and
// cross-origin POST, PUT and DELETE requests are refused too.
package admin

import (
	"time"

	"sluice/internal/conntrack"
	"sluice/internal/metrics"
)

// Controller is what the admin API reads and controls. The server
// implements it; every method must be safe for concurrent use and return
// quickly. The API may modify the slices it gets, so return fresh ones.
type Controller interface {
	// Rules reports every running rule, in config order.
	Rules() []RuleStatus
	// Connections reports the live connections and UDP sessions of every
	// rule, ordered by id.
	Connections() []conntrack.Snapshot
	// CloseConnection stops the connection with id and reports whether it
	// was live.
	CloseConnection(id uint64) bool
	// Reload re-reads the config file and applies it. On error nothing
	// changed; the error's text holds every problem, one per line.
	Reload() (ReloadReport, error)
	// Healthy reports whether every listener is up, and if not, why.
	Healthy() (ok bool, reason string)
	// Backends reports the backends of rule, or of its route when route
	// is not empty, in config order. An unknown rule or route is an
	// error wrapping ErrNotFound.
	Backends(rule, route string) ([]BackendStatus, error)
	// SetBackend applies change to the backend of rule (or of its route)
	// whose address as configured is address, and reports the backend
	// as it is then. An unknown rule, route or backend is an error
	// wrapping ErrNotFound; a state or weight it cannot take, one
	// wrapping ErrInvalid, and then nothing changed.
	SetBackend(rule, route, address string, change BackendChange) (BackendStatus, error)
}

// RuleStatus is one rule as GET /api/v1/rules reports it.
type RuleStatus struct {
	Name     string          `json:"name"`
	Listen   string          `json:"listen"`   // as configured, e.g. "0.0.0.0:8080"
	Protocol string          `json:"protocol"` // tcp | udp | tcp+udp
	Balance  string          `json:"balance"`
	Backends []BackendStatus `json:"backends"`
	// Routes are a routed rule's routes, in the order they are tried;
	// Backends above are then its default route's (none: no default).
	Routes []RouteStatus `json:"routes,omitempty"`
	// DefaultRouteConnections counts the connections of a routed rule
	// that no route took and its own backends (the default route) did;
	// nil for a rule without routes.
	DefaultRouteConnections *uint64 `json:"default_route_connections,omitempty"`
	// Certificates are those the rule serves where it terminates TLS, its
	// own and its routes'; none where it does not.
	Certificates []CertStatus `json:"certificates,omitempty"`
	Counters     Counters     `json:"counters"`
}

// RouteStatus is one route of a rule: what it matches, its backends and
// how many connections it took. A matcher the route does not use is left
// out of the JSON.
type RouteStatus struct {
	Name     string          `json:"name"`
	SNI      []string        `json:"sni,omitempty"`       // TLS server names
	ALPN     []string        `json:"alpn,omitempty"`      // TLS ALPN protocols
	HTTPHost []string        `json:"http_host,omitempty"` // HTTP/1.x Host values
	Detect   []string        `json:"detect,omitempty"`    // protocols: tls, http, ssh, proxy
	Balance  string          `json:"balance"`
	Backends []BackendStatus `json:"backends"`
	// Connections counts the connections the route took since the rule
	// (or the route, when a reload changed it) started.
	Connections uint64 `json:"connections"`
}

// CertStatus is one certificate a rule serves, for its expiry.
type CertStatus struct {
	Name     string    `json:"name"` // its first DNS name, or its subject's common name
	NotAfter time.Time `json:"not_after"`
	Route    string    `json:"route,omitempty"` // the route whose [rule.route.tls] serves it; empty: the rule's own
}

// BackendStatus is one backend of a rule.
type BackendStatus struct {
	Address string `json:"address"`
	// State is what an operator set: ready, drain or maint.
	State string `json:"state"`
	// Up is its health: false when checks or connects failed. While in
	// maintenance no check runs, and Up is the health last known.
	Up bool `json:"up"`
	// Health is Up in words, "up" or "down", or "maint" in maintenance.
	Health string `json:"health"`
	// Weight is the weight picks use now; ConfigWeight, the file's.
	Weight        int    `json:"weight"`
	ConfigWeight  int    `json:"config_weight"`
	Backup        bool   `json:"backup"`
	Active        int64  `json:"active"`         // live connections on it
	ConnectErrors uint64 `json:"connect_errors"` // failed connects so far
	// ConnectionsTotal counts the connections (UDP: sessions) that
	// reached it; BytesUp (client→backend) and BytesDown, their bytes,
	// live connections' so far included. The dashboard turns them into
	// rates.
	ConnectionsTotal uint64 `json:"connections_total"`
	BytesUp          int64  `json:"bytes_up"`
	BytesDown        int64  `json:"bytes_down"`
	// LastChange is when its state or health last changed; nil: not
	// since it was configured.
	LastChange *time.Time `json:"last_change,omitempty"`
}

// Counters are a rule's running totals. The dashboard turns them into
// rates from the difference between two polls.
type Counters struct {
	ConnectionsTotal uint64 `json:"connections_total"`
	Active           int64  `json:"active"`
	UDPSessions      int64  `json:"udp_sessions"`
	BytesUp          int64  `json:"bytes_up"`   // client→backend
	BytesDown        int64  `json:"bytes_down"` // backend→client
	Rejected         uint64 `json:"rejected"`
}

// CountersOf converts a rule's metrics counters to the API's shape.
func CountersOf(c metrics.Counters) Counters {
	return Counters{
		ConnectionsTotal: c.ConnectionsTotal,
		Active:           c.Active,
		UDPSessions:      c.UDPSessions,
		BytesUp:          c.BytesUp,
		BytesDown:        c.BytesDown,
		Rejected:         c.Rejected,
	}
}

// ReloadReport says what a reload changed, by rule name.
type ReloadReport struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

// connectionList is the body of GET /api/v1/connections.
type connectionList struct {
	Now         time.Time            `json:"now"`   // server time, for ages
	Total       int                  `json:"total"` // matching connections before the limit
	Connections []conntrack.Snapshot `json:"connections"`
}

// ruleList is the body of GET /api/v1/rules.
type ruleList struct {
	Rules []RuleStatus `json:"rules"`
}

// reloadFailure is the body of a failed POST /api/v1/reload.
type reloadFailure struct {
	Error  string   `json:"error"`
	Errors []string `json:"errors"`
}

// nonNil returns s, or an empty slice so that JSON says [] and not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
