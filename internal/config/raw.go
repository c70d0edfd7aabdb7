package config

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// rawConfig is the file as decoded, before checking. Leaves are `any` so that
// a value of the wrong type becomes an error with a line, not the end of
// decoding; the tables are structs so that the decoder reports unknown keys.
type rawConfig struct {
	LogLevel   any       `toml:"log_level"`
	LogFormat  any       `toml:"log_format"`
	Admin      any       `toml:"admin"`
	AdminToken any       `toml:"admin_token"`
	AccessLog  any       `toml:"access_log"`
	LogFile    any       `toml:"log_file"`
	Defaults   *rawRule  `toml:"defaults"`
	Rules      []rawRule `toml:"rule"`
}

// rawRule is one [[rule]] table, or [defaults], as decoded.
type rawRule struct {
	Name                any `toml:"name"`
	Listen              any `toml:"listen"`
	Protocol            any `toml:"protocol"`
	rawUpstream             // backends, balance, tls, ...
	IdleTimeout         any `toml:"idle_timeout"`
	DrainTimeout        any `toml:"drain_timeout"`
	Allow               any `toml:"allow"`
	Deny                any `toml:"deny"`
	MaxConnections      any `toml:"max_connections"`
	MaxConnectionsPerIP any `toml:"max_connections_per_ip"`
	PerIPPrefixV6       any `toml:"per_ip_prefix_v6"`
	RatePerIP           any `toml:"rate_per_ip"`
	Bandwidth           any `toml:"bandwidth"`
	CongestionControl   any `toml:"congestion_control"`
	AcceptProxyProtocol any `toml:"accept_proxy_protocol"`
	UDPSessionTimeout   any `toml:"udp_session_timeout"`
	MaxSessions         any `toml:"max_sessions"`
	Workers             any `toml:"workers"`
	PeekTimeout         any `toml:"peek_timeout"`

	Routes []rawRoute `toml:"route"` // an error in [defaults]
}

// rawUpstream is the backend side of a rule, [defaults] or a route, as
// decoded: the keys a route may set.
type rawUpstream struct {
	Backends       any            `toml:"backends"`
	BackendsFrom   any            `toml:"backends_from"`
	Balance        any            `toml:"balance"`
	ConnectTimeout any            `toml:"connect_timeout"`
	Retries        any            `toml:"retries"`
	ResolveTTL     any            `toml:"resolve_ttl"`
	ProxyProtocol  any            `toml:"proxy_protocol"`
	HealthCheck    *rawHealth     `toml:"health_check"`
	TLS            *rawTLS        `toml:"tls"`
	BackendTLS     *rawBackendTLS `toml:"backend_tls"`
	SlowStart      any            `toml:"slow_start"`
	QueueTimeout   any            `toml:"queue_timeout"`
	MaxQueue       any            `toml:"max_queue"`
	Source         any            `toml:"source"`
	Mark           any            `toml:"mark"`
}

// rawRoute is one [[rule.route]] table as decoded.
type rawRoute struct {
	Name     any `toml:"name"`
	SNI      any `toml:"sni"`
	ALPN     any `toml:"alpn"`
	HTTPHost any `toml:"http_host"`
	Detect   any `toml:"detect"`
	rawUpstream
}

// rawTLS is a tls table as decoded, or, written as a string ("off"), that
// string.
type rawTLS struct {
	Certificates any `toml:"certificates"`
	Cert         any `toml:"cert"`
	Key          any `toml:"key"`
	MinVersion   any `toml:"min_version"`
	ALPN         any `toml:"alpn"`
	ClientCA     any `toml:"client_ca"`
	tableWord
}

// rawBackendTLS is a backend_tls table as decoded, or, written as a string
// ("off"), that string.
type rawBackendTLS struct {
	CA                 any `toml:"ca"`
	ServerName         any `toml:"server_name"`
	Cert               any `toml:"cert"`
	Key                any `toml:"key"`
	InsecureSkipVerify any `toml:"insecure_skip_verify"`
	tableWord
}

// rawHealth is a health_check table as decoded, or, written as a string
// ("off": a rule lifting the check [defaults] sets), that string.
type rawHealth struct {
	Interval any `toml:"interval"`
	Timeout  any `toml:"timeout"`
	Rise     any `toml:"rise"`
	Fall     any `toml:"fall"`
	Send     any `toml:"send"`
	Expect   any `toml:"expect"`
	Port     any `toml:"port"`
	tableWord
}

// tableWord takes a table written as a string instead, as "off" lifts a
// table that [defaults] sets; the source's reader of the table checks the
// word.
type tableWord struct{ word *string }

// UnmarshalText keeps the string the table was written as.
func (o *tableWord) UnmarshalText(b []byte) error {
	w := string(b)
	o.word = &w
	return nil
}

// Known keys, for "did you mean" hints on unknown ones.
const (
	topKeys = "log_level log_format access_log log_file admin admin_token defaults rule"
	// upstreamKeys are the backend-side keys, which a route may set too.
	upstreamKeys   = "backends backends_from balance connect_timeout retries resolve_ttl proxy_protocol health_check tls backend_tls slow_start queue_timeout max_queue source mark"
	ruleKeys       = "name listen protocol " + upstreamKeys + " idle_timeout drain_timeout allow deny max_connections max_connections_per_ip per_ip_prefix_v6 rate_per_ip bandwidth accept_proxy_protocol udp_session_timeout max_sessions congestion_control workers peek_timeout route"
	routeKeys      = "name sni alpn http_host detect " + upstreamKeys
	healthKeys     = "interval timeout rise fall send expect port"
	backendKeys    = "address weight backup max_connections"
	tlsKeys        = "certificates cert key min_version alpn client_ca"
	certKeys       = "cert key"
	backendTLSKeys = "ca server_name cert key insecure_skip_verify"
)

// opt is one setting as read from a table: whether the key was there, and if
// so whether its value was valid, the value, and the line it is on.
type opt[T any] struct {
	val     T
	present bool // the key was written
	set     bool // ...and its value is valid
	line    int
}

// or returns the value if it is set, else d.
func (o opt[T]) or(d T) T {
	if o.set {
		return o.val
	}
	return d
}

// pick returns own if its key was written, else inherited.
func pick[T any](own, inherited opt[T]) opt[T] {
	if own.present {
		return own
	}
	return inherited
}

// source reads the keys of one table and reports problems with them.
type source struct {
	col  *collector
	ctx  string // what the table is, for messages: `rule "web"`, "defaults", or "" at top level
	path string // index path of the table: "rule.0", "defaults", or ""
}

// sub returns a source for a table inside this one.
func (s source) sub(ctx, key string) source {
	if s.ctx != "" {
		ctx = s.ctx + ": " + ctx
	}
	return source{col: s.col, ctx: ctx, path: joinPath(s.path, key)}
}

// line returns the line of key in this table ("" for the table itself).
func (s source) line(key string) int {
	if s.col.index == nil {
		return 0
	}
	return s.col.index.line(joinPath(s.path, key))
}

// errorf reports a problem with key (or with the whole table if key is "").
func (s source) errorf(key, format string, args ...any) {
	s.errorAt(s.line(key), format, args...)
}

// errorAt reports a problem in this table at a given line.
func (s source) errorAt(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.ctx != "" {
		msg = s.ctx + ": " + msg
	}
	s.col.add(line, msg)
}

// start begins an opt for key holding v.
func start[T any](s source, key string, v any) opt[T] {
	return opt[T]{present: v != nil, line: s.line(key)}
}

// show formats a decoded value for a message: strings quoted, numbers plain,
// containers by kind.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case int64, float64, bool:
		return fmt.Sprint(v)
	case []any:
		return "[...]"
	case map[string]any:
		return "{...}"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// typeName describes the TOML type of a decoded value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// str reads a string.
func (s source) str(key string, v any) opt[string] {
	o := start[string](s, key, v)
	if v == nil {
		return o
	}
	if str, ok := v.(string); ok {
		o.val, o.set = str, true
		return o
	}
	s.errorf(key, "%s %s: want a string, not %s", key, show(v), typeName(v))
	return o
}

// enum reads a string that must be one of allowed.
func (s source) enum(key string, v any, allowed ...string) opt[string] {
	o := s.str(key, v)
	if o.set && !contains(allowed, o.val) {
		s.errorf(key, "%s %q: unknown value (want one of %s)", key, o.val, strings.Join(allowed, ", "))
		o.set = false
	}
	return o
}

// contains reports whether list holds v.
func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// integer reads an integer of at least min.
func (s source) integer(key string, v any, min int64) opt[int] {
	o := start[int](s, key, v)
	if v == nil {
		return o
	}
	n, ok := v.(int64)
	switch {
	case !ok:
		s.errorf(key, "%s %s: want an integer, not %s", key, show(v), typeName(v))
	case n < min && min == 0:
		s.errorf(key, "%s %d: must not be negative", key, n)
	case n < min:
		s.errorf(key, "%s %d: must be at least %d", key, n, min)
	case n > math.MaxInt32:
		s.errorf(key, "%s %d: too large (max %d)", key, n, math.MaxInt32)
	default:
		o.val, o.set = int(n), true
	}
	return o
}

// duration reads a duration string such as "90s"; it must be positive.
func (s source) duration(key string, v any) opt[time.Duration] {
	o := start[time.Duration](s, key, v)
	str := s.str(key, v)
	if !str.set {
		return o
	}
	d, err := time.ParseDuration(str.val)
	switch {
	case err != nil:
		s.errorf(key, `%s %q: invalid duration (want e.g. "90s", "5m", "1h")`, key, str.val)
	case d <= 0:
		s.errorf(key, "%s %q: must be greater than zero", key, str.val)
	default:
		o.val, o.set = d, true
	}
	return o
}

// prefixBits reads the length of an IPv6 prefix: an integer from 1 to 128.
func (s source) prefixBits(key string, v any) opt[int] {
	o := s.integer(key, v, 1)
	if o.set && o.val > 128 {
		s.errorf(key, "%s %d: an IPv6 prefix has at most 128 bits", key, o.val)
		o.set = false
	}
	return o
}

// rate reads a positive, finite number (integer or float).
func (s source) rate(key string, v any) opt[float64] {
	o := start[float64](s, key, v)
	var f float64
	switch n := v.(type) {
	case nil:
		return o
	case int64:
		f = float64(n)
	case float64:
		f = n
	case string:
		if n != unlimited {
			s.errorf(key, "%s %s: want a number, or %q", key, show(v), unlimited)
			return o
		}
		o.val, o.set = 0, true
		return o
	default:
		s.errorf(key, "%s %s: want a number, not %s", key, show(v), typeName(v))
		return o
	}
	if !(f > 0) || math.IsInf(f, 0) {
		s.errorf(key, "%s %s: must be a number greater than zero", key, show(v))
		return o
	}
	o.val, o.set = f, true
	return o
}

// boolean reads true or false.
func (s source) boolean(key string, v any) opt[bool] {
	o := start[bool](s, key, v)
	if v == nil {
		return o
	}
	if b, ok := v.(bool); ok {
		o.val, o.set = b, true
		return o
	}
	s.errorf(key, "%s %s: want true or false, not %s", key, show(v), typeName(v))
	return o
}

// list reads an array, calling each for its elements with their index paths.
func (s source) list(key string, v any, each func(elem string, v any)) bool {
	if v == nil {
		return false
	}
	items, ok := v.([]any)
	if !ok {
		s.errorf(key, "%s %s: want a list, not %s", key, show(v), typeName(v))
		return false
	}
	for i, item := range items {
		each(fmt.Sprintf("%s.%d", key, i), item)
	}
	return true
}
