package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// MaxFileSize is the largest config file Load and Parse take, in bytes.
const MaxFileSize = 16 << 20

// Load reads the config file at path and parses it (see Parse). A file that
// cannot be read gives the *fs.PathError from os.Open or Read; no more than
// MaxFileSize bytes and one are read.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// tooLarge reports a document over MaxFileSize.
func tooLarge(filename string) error {
	return &Errors{{File: filename, Message: fmt.Sprintf("config file is larger than the limit of %d MiB", MaxFileSize>>20)}}
}

// Parse decodes a TOML config and validates it, filling in every default, so
// that each field of the result holds the value in force. filename is used
// in messages and kept as Config.Path. If anything is wrong the error is an
// *Errors listing every problem, each with file:line.
func Parse(filename string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(filename)
	}
	col := &collector{file: filename, index: buildIndex(data)}
	var raw rawConfig
	// Unknown keys are found in the index, not by the decoder: its
	// strict mode copies the whole document for each one.
	err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if col.index.ok {
		col.index.checkShapes(col)
		if len(col.errs) > 0 {
			return nil, col.err() // the decoder's error, if any, is a consequence
		}
	}
	var syntax *toml.DecodeError
	switch {
	case errors.As(err, &syntax):
		line, column := syntax.Position()
		msg := "invalid TOML: " + strings.TrimPrefix(syntax.Error(), "toml: ")
		col.errs = append(col.errs, &Error{File: filename, Line: line, Column: column, Message: msg})
		return nil, col.err()
	case err != nil:
		col.add(0, "invalid TOML: "+err.Error())
		return nil, col.err()
	}
	col.index.checkKeys(col, &raw)
	c := build(col, &raw)
	if err := col.err(); err != nil {
		return nil, err
	}
	c.Path = filename
	return c, nil
}

// build checks the decoded file and turns it into a Config.
func build(col *collector, raw *rawConfig) *Config {
	c := &Config{}
	readGlobals(source{col: col}, raw, c)
	var inh ruleSpec
	var inhName opt[string]
	if raw.Defaults != nil {
		ds := source{col: col, ctx: "defaults", path: "defaults"}
		inh = readSpec(ds, raw.Defaults)
		inhName = readName(ds, raw.Defaults.Name)
		if raw.Defaults.Routes != nil {
			ds.errorf("route", "route: routes belong in a rule ([[rule.route]]), not in [defaults]")
		}
	}
	if len(raw.Rules) == 0 {
		col.add(0, "no rules (add a [[rule]] table)")
	}
	rules := make([]built, 0, len(raw.Rules))
	for i := range raw.Rules {
		s := source{col: col, ctx: "rule #" + strconv.Itoa(i+1), path: "rule." + strconv.Itoa(i)}
		name := pick(readName(s, raw.Rules[i].Name), inhName)
		if name.set {
			s.ctx = fmt.Sprintf("rule %q", name.val)
		}
		if !name.present {
			s.errorf("", "missing name")
		}
		own := readSpec(s, &raw.Rules[i])
		b := buildRule(s, &own, &inh)
		b.Name, b.named, b.nameLine = name.val, name.set, name.line
		rules = append(rules, b)
	}
	checkClashes(rules)
	for _, b := range rules {
		c.Rules = append(c.Rules, b.Rule)
	}
	return c
}

// readGlobals reads and checks the top-level keys into c.
func readGlobals(s source, raw *rawConfig, c *Config) {
	c.LogLevel = s.enum("log_level", raw.LogLevel, "debug", "info", "warn", "error").or("info")
	c.LogFormat = s.enum("log_format", raw.LogFormat, "text", "json").or("text")
	c.AccessLog = s.logPath("access_log", raw.AccessLog, true).or(logStderr)
	c.LogFile = s.logPath("log_file", raw.LogFile, false).or(logStderr)
	token := s.str("admin_token", raw.AdminToken)
	if token.set && !validToken(token.val) {
		s.errorf("admin_token", "admin_token: must be printable ASCII without spaces")
	}
	c.AdminToken = token.val
	admin := s.address("admin", "admin", raw.Admin, roleAdmin)
	if !admin.set {
		return
	}
	c.Admin = admin.val.String()
	if c.AdminToken == "" && !isLoopback(admin.val.Host) {
		s.errorAt(admin.line, "admin %q: admin_token is required when admin listens on a non-loopback address", c.Admin)
	}
}

// The words access_log and log_file take besides a path.
const (
	logStderr = "stderr"
	logOff    = "off" // access_log only
)

// logPath reads access_log (canOff) or log_file: "stderr", "off" for the
// access log, or the path of a file, which sluice opens at start (and
// again on SIGUSR1); a relative path is taken from the config file's
// directory, as the TLS files are.
func (s source) logPath(key string, v any, canOff bool) opt[string] {
	o := s.str(key, v)
	want := `"stderr" or a file path`
	if canOff {
		want = `"stderr", "off" or a file path`
	}
	switch {
	case !o.set || o.val == logStderr || (o.val == logOff && canOff):
		return o
	case o.val == logOff:
		s.errorf(key, "%s %q: the log cannot be turned off (want %s)", key, o.val, want)
	case o.val == "":
		s.errorf(key, "%s %q: empty path (want %s)", key, o.val, want)
	default:
		return s.filePath(key, v)
	}
	o.set = false
	return o
}

// validToken reports whether a token can be sent in an Authorization header.
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}

// isLoopback reports whether a host is certainly a loopback address. An empty
// host means every address, and names other than localhost may resolve
// anywhere.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// ruleLabel names rule i for messages before the rules are checked.
func ruleLabel(raw *rawConfig, i int) string {
	if i < len(raw.Rules) {
		if name, ok := raw.Rules[i].Name.(string); ok && checkName(name) {
			return fmt.Sprintf("rule %q", name)
		}
	}
	return "rule #" + strconv.Itoa(i+1)
}

// hint suggests the known key closest to an unknown one, if it is close.
func hint(key, known string) string {
	return hintPrefixed("", key, known)
}

// hintPrefixed is hint for a key inside a table whose path is prefix.
func hintPrefixed(prefix, key, known string) string {
	first, _, _ := strings.Cut(key, ".")
	best, bestDist := "", 3
	for known != "" {
		var k string
		k, known, _ = strings.Cut(known, " ")
		if abs(len(first)-len(k)) >= bestDist {
			continue // the distance is at least the difference in length
		}
		if d := editDistance(first, k); d < bestDist && d < len(first) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", prefix+best)
}

// abs returns the absolute value of n.
func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the Levenshtein distance between two strings; b is short
// (a known key), so its rows fit on the stack.
func editDistance(a, b string) int {
	var prevBuf, curBuf [32]int
	prev, cur := prevBuf[:0], curBuf[:0]
	if len(b) >= len(prevBuf) {
		prev, cur = make([]int, 0, len(b)+1), make([]int, 0, len(b)+1)
	}
	prev, cur = prev[:len(b)+1], cur[:len(b)+1]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
