package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Format returns the config as TOML with every default written out:
// durations as Go duration strings ("5s", "1h"), backends as tables, one
// [[rule]] per rule and no [defaults]. Features that are off are noted in
// comments. Parse(c.Path, []byte(c.Format())) gives back an equal Config.
// Format includes admin_token when set, so its output is as secret as the
// file itself.
func (c *Config) Format() string {
	var b strings.Builder
	kv(&b, "log_level", quote(c.LogLevel))
	kv(&b, "log_format", quote(c.LogFormat))
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

// formatRule writes the keys of one rule.
func formatRule(b *strings.Builder, r *Rule) {
	kv(b, "name", quote(r.Name))
	kv(b, "listen", quote(r.Listen.String()))
	kv(b, "protocol", quote(string(r.Protocol)))
	b.WriteString("backends = [\n")
	for _, be := range r.Backends {
		fmt.Fprintf(b, "  { address = %s, weight = %d, backup = %t },\n", quote(be.Address.String()), be.Weight, be.Backup)
	}
	b.WriteString("]\n")
	kv(b, "balance", quote(r.Balance))
	kv(b, "retries", strconv.Itoa(r.Retries))
	kv(b, "connect_timeout", quote(formatDuration(r.ConnectTimeout)))
	kv(b, "idle_timeout", quote(formatDuration(r.IdleTimeout)))
	kv(b, "drain_timeout", quote(formatDuration(r.DrainTimeout)))
	kv(b, "resolve_ttl", quote(formatDuration(r.ResolveTTL)))
	kv(b, "udp_session_timeout", quote(formatDuration(r.UDPSessionTimeout)))
	kv(b, "max_connections", strconv.Itoa(r.MaxConnections))
	kv(b, "max_connections_per_ip", strconv.Itoa(r.MaxConnectionsPerIP))
	kv(b, "per_ip_prefix_v6", strconv.Itoa(r.PerIPPrefixV6))
	kv(b, "max_sessions", strconv.Itoa(r.MaxSessions))
	optional(b, "rate_per_ip", r.RatePerIP != 0, formatFloat(r.RatePerIP), quote(unlimited))
	optional(b, "bandwidth", r.Bandwidth != 0, formatBandwidth(r.Bandwidth), quote(unlimited))
	kv(b, "allow", prefixList(r.Allow))
	kv(b, "deny", prefixList(r.Deny))
	optional(b, "proxy_protocol", r.ProxyProtocol != 0, quote("v"+strconv.Itoa(r.ProxyProtocol)), quote("off"))
	kv(b, "accept_proxy_protocol", prefixList(r.AcceptProxyProtocol))
	kv(b, "congestion_control", quote(r.CongestionControl.String()))
	kv(b, "workers", strconv.Itoa(r.Workers))
	if h := r.HealthCheck; h != nil {
		fmt.Fprintf(b, "health_check = { interval = %s, timeout = %s, rise = %d, fall = %d",
			quote(formatDuration(h.Interval)), quote(formatDuration(h.Timeout)), h.Rise, h.Fall)
		if h.Send != "" {
			b.WriteString(", send = " + quote(h.Send))
		}
		if h.Expect != "" {
			b.WriteString(", expect = " + quote(h.Expect))
		}
		b.WriteString(" }\n")
	} else {
		kv(b, "health_check", quote("off"))
	}
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
