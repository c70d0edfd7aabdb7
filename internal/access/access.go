// Package access is the finish of a TCP connection or UDP session: how it
// ended (End, and Reason for a refused client) and the one access line that
// says so (Line). TCP, UDP, the relay, the connection table and the metrics
// share this vocabulary; docs/OPERATIONS.md lists the ends and
// docs/CONFIG.md the reasons, and a test holds the code to those lists.
//
// It imports only the standard library, so that every layer may use it.
package access

import (
	"log/slog"
	"strconv"
	"time"
)

// Seconds returns an access line's attribute key with the duration d, in
// seconds to the microsecond with always six decimals: "0.000071", "3.000000".
// The text handler writes that text (a float64 would come out as "7.1e-05"
// for 71 µs); the JSON handler writes it as a number. A negative d, which
// a monotonic clock does not give, is written as 0.
func Seconds(key string, d time.Duration) slog.Attr {
	return slog.Any(key, seconds(d))
}

// seconds is a duration that logs as Seconds describes.
type seconds time.Duration

// String returns the seconds with six decimals.
func (s seconds) String() string { return string(s.append(nil)) }

// MarshalText is what slog's text handler writes.
func (s seconds) MarshalText() ([]byte, error) { return s.append(nil), nil }

// MarshalJSON is what slog's JSON handler writes: a number.
func (s seconds) MarshalJSON() ([]byte, error) { return s.append(nil), nil }

// append appends the seconds with six decimals to b, with integer
// arithmetic: no float rounding, no e-notation.
func (s seconds) append(b []byte) []byte {
	us := int64(max(time.Duration(s), 0).Round(time.Microsecond) / time.Microsecond)
	b = strconv.AppendInt(b, us/1e6, 10)
	frac := strconv.FormatInt(us%1e6+1e6, 10) // 1000071: a leading 1 keeps the zeros
	return append(append(b, '.'), frac[1:]...)
}
