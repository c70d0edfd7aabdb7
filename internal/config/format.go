package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Format returns the config as TOML with every default written out:
// durations as Go duration strings ("5s", "1h"), backends as tables, one
// [[rule]] per rule and no [defaults]. Features that are off are noted in
// comments. Routes follow their rule as [[rule.route]] tables, each with
// every key in force (inherited ones too), and tls and backend_tls are
// tables after the keys, or "off". Parse(c.Path, []byte(c.Format())) gives
// back an equal Config.
// Format includes admin_token when set, so its output is as secret as the
// file itself.
func (c *Config) Format() string {
	var b strings.Builder
	kv(&b, "log_level", quote(c.LogLevel))
	kv(&b, "log_format", quote(c.LogFormat))
	kv(&b, "access_log", quote(c.AccessLog))
	kv(&b, "log_file", quote(c.LogFile))
	if c.Admin != "" {
		kv(&b, "admin", quote(c.Admin))
	}
	if c.AdminToken != "" {
		kv(&b, "admin_token", quote(c.AdminToken))
	}
	for i := range c.Rules {
		b.WriteString("\n[[rule]]\n")
		formatRule(&b, &c.Rules[i])
	}
	return b.String()
}

// formatRule writes the keys of one rule, then its tables and routes.
func formatRule(b *strings.Builder, r *Rule) {
	kv(b, "name", quote(r.Name))
	kv(b, "listen", quote(r.Listen.String()))
	kv(b, "protocol", quote(string(r.Protocol)))
	formatUpstreamKeys(b, &r.Upstream)
	kv(b, "idle_timeout", quote(formatDuration(r.IdleTimeout)))
	kv(b, "drain_timeout", quote(formatDuration(r.DrainTimeout)))
	kv(b, "udp_session_timeout", quote(formatDuration(r.UDPSessionTimeout)))
	kv(b, "peek_timeout", quote(formatDuration(r.PeekTimeout)))
	kv(b, "max_connections", strconv.Itoa(r.MaxConnections))
	kv(b, "max_connections_per_ip", strconv.Itoa(r.MaxConnectionsPerIP))
	kv(b, "per_ip_prefix_v6", strconv.Itoa(r.PerIPPrefixV6))
	kv(b, "max_sessions", strconv.Itoa(r.MaxSessions))
	optional(b, "rate_per_ip", r.RatePerIP != 0, formatFloat(r.RatePerIP), quote(unlimited))
	optional(b, "bandwidth", r.Bandwidth != 0, formatBandwidth(r.Bandwidth), quote(unlimited))
	kv(b, "allow", prefixList(r.Allow))
	kv(b, "deny", prefixList(r.Deny))
	kv(b, "accept_proxy_protocol", prefixList(r.AcceptProxyProtocol))
	kv(b, "congestion_control", quote(r.CongestionControl.String()))
	kv(b, "workers", strconv.Itoa(r.Workers))
	formatTLSTables(b, "rule", &r.Upstream)
	for i := range r.Routes {
		b.WriteString("\n[[rule.route]]\n")
		formatRoute(b, &r.Routes[i])
	}
}

// formatRoute writes the keys of one route, then its tables.
func formatRoute(b *strings.Builder, rt *Route) {
	kv(b, "name", quote(rt.Name))
	for _, m := range []struct {
		key    string
		values []string
	}{{"sni", rt.SNI}, {"alpn", rt.ALPN}, {"http_host", rt.HTTPHost}, {"detect", rt.Detect}} {
		if len(m.values) > 0 {
			kv(b, m.key, stringList(m.values))
		}
	}
	formatUpstreamKeys(b, &rt.Upstream)
	formatTLSTables(b, "rule.route", &rt.Upstream)
}

// formatUpstreamKeys writes the backend-side keys of a rule or route; tls
// and backend_tls only when off, as their tables come after every key.
// A routed rule without backends of its own has no backends key.
func formatUpstreamKeys(b *strings.Builder, u *Upstream) {
	if len(u.Backends) > 0 {
		b.WriteString("backends = [\n")
		for _, be := range u.Backends {
			fmt.Fprintf(b, "  { address = %s, weight = %d, backup = %t", quote(be.Address.String()), be.Weight, be.Backup)
			if be.MaxConnections > 0 {
				fmt.Fprintf(b, ", max_connections = %d", be.MaxConnections)
			}
			b.WriteString(" },\n")
		}
		b.WriteString("]\n")
	}
	if !u.BackendsFrom.IsZero() {
		kv(b, "backends_from", quote(u.BackendsFrom.String()))
	}
	kv(b, "balance", quote(u.Balance))
	kv(b, "retries", strconv.Itoa(u.Retries))
	kv(b, "connect_timeout", quote(formatDuration(u.ConnectTimeout)))
	kv(b, "resolve_ttl", quote(formatDuration(u.ResolveTTL)))
	optional(b, "proxy_protocol", u.ProxyProtocol != 0, quote("v"+strconv.Itoa(u.ProxyProtocol)), quote("off"))
	optional(b, "slow_start", u.SlowStart != 0, quote(formatDuration(u.SlowStart)), quote("off"))
	optional(b, "queue_timeout", u.QueueTimeout != 0, quote(formatDuration(u.QueueTimeout)), quote("off"))
	kv(b, "max_queue", strconv.Itoa(u.MaxQueue))
	kv(b, "source", quote(u.Source.String()))
	kv(b, "mark", strconv.FormatUint(uint64(u.Mark), 10))
	if h := u.HealthCheck; h != nil {
		fmt.Fprintf(b, "health_check = { interval = %s, timeout = %s, rise = %d, fall = %d",
			quote(formatDuration(h.Interval)), quote(formatDuration(h.Timeout)), h.Rise, h.Fall)
		if h.Send != "" {
			b.WriteString(", send = " + quote(h.Send))
		}
		if h.Expect != "" {
			b.WriteString(", expect = " + quote(h.Expect))
		}
		if h.Port != 0 {
			b.WriteString(", port = " + strconv.Itoa(int(h.Port)))
		}
		b.WriteString(" }\n")
	} else {
		kv(b, "health_check", quote("off"))
	}
	if u.TLS == nil {
		kv(b, "tls", quote("off"))
	}
	if u.BackendTLS == nil {
		kv(b, "backend_tls", quote("off"))
	}
}

// formatTLSTables writes the tls and backend_tls tables of a rule or route
// that has them; table is the header's prefix, "rule" or "rule.route".
func formatTLSTables(b *strings.Builder, table string, u *Upstream) {
	if t := u.TLS; t != nil {
		fmt.Fprintf(b, "\n[%s.tls]\ncertificates = [\n", table)
		for _, c := range t.Certificates {
			fmt.Fprintf(b, "  { cert = %s, key = %s },\n", quote(c.Cert), quote(c.Key))
		}
		b.WriteString("]\n")
		kv(b, "min_version", quote(tlsVersion(t.MinVersion)))
		kv(b, "alpn", stringList(t.ALPN))
		if t.ClientCA != "" {
			kv(b, "client_ca", quote(t.ClientCA))
		}
	}
	if t := u.BackendTLS; t != nil {
		fmt.Fprintf(b, "\n[%s.backend_tls]\n", table)
		for _, f := range []struct{ key, value string }{{"ca", t.CA}, {"server_name", t.ServerName}, {"cert", t.Cert}, {"key", t.Key}} {
			if f.value != "" {
				kv(b, f.key, quote(f.value))
			}
		}
		kv(b, "insecure_skip_verify", strconv.FormatBool(t.InsecureSkipVerify))
	}
}

// tlsVersion names a TLS version as min_version takes it.
func tlsVersion(v uint16) string {
	if v == tls.VersionTLS13 {
		return "1.3"
	}
	return "1.2"
}

// kv writes one key-value line; value is already TOML.
func kv(b *strings.Builder, key, value string) {
	b.WriteString(key + " = " + value + "\n")
}

// optional writes a key whose zero value means off: value when on, else
// off, the value that says so.
func optional(b *strings.Builder, key string, on bool, value, off string) {
	if on {
		kv(b, key, value)
		return
	}
	kv(b, key, off)
}

// prefixList writes CIDR prefixes as a TOML array of strings.
func prefixList(ps []netip.Prefix) string {
	items := make([]string, len(ps))
	for i, p := range ps {
		items[i] = quote(p.String())
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// stringList writes strings as a TOML array.
func stringList(strs []string) string {
	items := make([]string, len(strs))
	for i, s := range strs {
		items[i] = quote(s)
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// quote writes s as a TOML basic string, escaping quotes, backslashes and
// control characters.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
