package config

// QuickRuleName is the name of the one rule FromQuick builds.
const QuickRuleName = "default"

// Quick holds the quick-mode command-line flags (sluice -l LISTEN -r REMOTE
// ...). Empty strings and a zero MaxConns or Workers mean the flag was not given, so
// the documented default applies.
type Quick struct {
	Listen         string   // -l: listen address
	Remotes        []string // -r: backend addresses, in order
	Protocol       string   // -p: tcp | udp | tcp+udp
	Balance        string   // --balance
	ConnectTimeout string   // --connect-timeout, e.g. "5s"
	IdleTimeout    string   // --idle-timeout, e.g. "1h"
	ProxyProtocol  string   // --proxy-protocol: v1 | v2
	Allow          []string // --allow: CIDRs or IPs
	MaxConns       int      // --max-conns; 0 means unlimited
	Congestion     string   // --congestion-control: auto | system | an algorithm
	Workers        int      // --workers; 0 means the default
}

// FromQuick builds a config with one rule named "default" from quick-mode
// flags, checked and defaulted exactly like a rule in a file. Messages carry
// no file, line or rule name (`backend "10.0.0.5": missing port`). Global
// settings are left at their defaults (log level "info", log format "text",
// no admin server); the caller sets them from its own flags and then calls
// ValidateGlobals.
func FromQuick(q Quick) (*Config, error) {
	col := &collector{}
	raw := rawRule{
		Listen:   nonEmpty(q.Listen),
		Protocol: nonEmpty(q.Protocol),
		rawUpstream: rawUpstream{
			Backends:       anyList(q.Remotes),
			Balance:        nonEmpty(q.Balance),
			ConnectTimeout: nonEmpty(q.ConnectTimeout),
			ProxyProtocol:  nonEmpty(q.ProxyProtocol),
		},
		IdleTimeout:       nonEmpty(q.IdleTimeout),
		Allow:             anyList(q.Allow),
		CongestionControl: nonEmpty(q.Congestion),
	}
	if q.MaxConns != 0 {
		raw.MaxConnections = int64(q.MaxConns)
	}
	if q.Workers != 0 {
		raw.Workers = int64(q.Workers)
	}
	s := source{col: col}
	own := readSpec(s, &raw)
	b := buildRule(s, &own, &ruleSpec{})
	if err := col.err(); err != nil {
		return nil, err
	}
	b.Name = QuickRuleName
	return &Config{LogLevel: "info", LogFormat: "text", AccessLog: logStderr, LogFile: logStderr, Rules: []Rule{b.Rule}}, nil
}

// ValidateGlobals checks the global settings of c (LogLevel, LogFormat,
// Admin, AdminToken), as set by command-line flags, with the rules a config
// file's top-level keys follow. An empty LogLevel or LogFormat becomes the
// default and Admin is normalised; c is changed only if it is valid. The
// error is an *Errors whose messages name no file, since the values checked
// may come from flags (`admin ":9900": admin_token is required ...`).
func ValidateGlobals(c *Config) error {
	col := &collector{}
	raw := rawConfig{
		LogLevel:   nonEmpty(c.LogLevel),
		LogFormat:  nonEmpty(c.LogFormat),
		Admin:      nonEmpty(c.Admin),
		AdminToken: nonEmpty(c.AdminToken),
		AccessLog:  nonEmpty(c.AccessLog),
		LogFile:    nonEmpty(c.LogFile),
	}
	var out Config
	readGlobals(source{col: col}, &raw, &out)
	if err := col.err(); err != nil {
		return err
	}
	c.LogLevel, c.LogFormat, c.Admin, c.AdminToken = out.LogLevel, out.LogFormat, out.Admin, out.AdminToken
	c.AccessLog, c.LogFile = out.AccessLog, out.LogFile
	return nil
}

// nonEmpty returns s as a decoded value, or nil (not given) if it is empty.
func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// anyList returns strs as a decoded TOML array, or nil if it is empty.
func anyList(strs []string) any {
	if len(strs) == 0 {
		return nil
	}
	out := make([]any, len(strs))
	for i, s := range strs {
		out[i] = s
	}
	return out
}
