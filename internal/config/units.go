package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// wantBandwidth is the hint shown with a bad bandwidth.
const wantBandwidth = `want e.g. "10MiB/s", "500KB/s", "1Gbit/s", an integer in bytes per second, or "unlimited"`

// unlimited is the value of bandwidth and rate_per_ip that sets no limit,
// so that a rule can lift one that [defaults] sets. It reads as 0.
const unlimited = "unlimited"

// maxBandwidth bounds a bandwidth so that byte arithmetic on it cannot overflow.
const maxBandwidth = 1 << 62

// bandwidth reads a per-connection rate: an integer in bytes per second, a
// string with a unit such as "10MiB/s", or "unlimited" (0).
func (s source) bandwidth(key string, v any) opt[int64] {
	o := start[int64](s, key, v)
	var n int64
	var err error
	switch b := v.(type) {
	case nil:
		return o
	case int64:
		n = b
		if n < 1 || n > maxBandwidth {
			err = fmt.Errorf("must be between 1 and %d bytes per second", int64(maxBandwidth))
		}
	case string:
		if b != unlimited {
			n, err = parseBandwidth(b)
		}
	default:
		err = fmt.Errorf("%s (%s)", typeName(v), wantBandwidth)
	}
	if err != nil {
		s.errorf(key, "%s %s: %v", key, show(v), err)
		return o
	}
	o.val, o.set = n, true
	return o
}

// bandwidthUnit returns the size in bytes of a bandwidth unit: bytes with
// decimal (KB = 1000) or binary (KiB = 1024) prefixes, or bits with decimal
// prefixes.
func bandwidthUnit(u string) (float64, bool) {
	units := map[string]float64{
		"B": 1, "KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"bit": 1.0 / 8, "Kbit": 1e3 / 8, "kbit": 1e3 / 8, "Mbit": 1e6 / 8, "Gbit": 1e9 / 8, "Tbit": 1e12 / 8,
	}
	m, ok := units[u]
	return m, ok
}

// parseBandwidth parses "10MiB/s", "1.5 Gbit/s" and the like into bytes per
// second, rounded to the nearest byte.
func parseBandwidth(s string) (int64, error) {
	rest, ok := strings.CutSuffix(strings.TrimSpace(s), "/s")
	if !ok {
		return 0, errors.New("invalid rate (" + wantBandwidth + ")")
	}
	i := strings.IndexFunc(rest, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	if i < 0 {
		return 0, errors.New("missing unit (" + wantBandwidth + ")")
	}
	num, unit := rest[:i], strings.TrimSpace(rest[i:])
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || (hasDot && (frac == "" || strings.Contains(frac, "."))) {
		return 0, errors.New("invalid rate (" + wantBandwidth + ")")
	}
	mult, ok := bandwidthUnit(unit)
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (%s)", unit, wantBandwidth)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, errors.New("invalid rate (" + wantBandwidth + ")")
	}
	b := math.Round(f * mult)
	switch {
	case b < 1:
		return 0, errors.New("less than 1 byte per second")
	case b > maxBandwidth:
		return 0, errors.New("too large")
	}
	return int64(b), nil
}

// formatBandwidth writes bytes per second as TOML: a string in the unit that
// divides it exactly with the smallest quotient, or a plain integer.
func formatBandwidth(n int64) string {
	units := []struct {
		name string
		size int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	}
	best := strconv.FormatInt(n, 10)
	least := n
	for _, u := range units {
		if q := n / u.size; n%u.size == 0 && q < least {
			best, least = fmt.Sprintf(`"%d%s/s"`, q, u.name), q
		}
	}
	return best
}

// formatDuration writes a duration the way time.ParseDuration reads it,
// without zero minutes or seconds: "1h" rather than "1h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// formatFloat writes a float so that TOML reads it back as the same float.
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// checkName reports whether a rule name uses only [A-Za-z0-9_.-].
func checkName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !isNameChar(c) {
			return false
		}
	}
	return true
}
