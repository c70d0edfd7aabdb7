package access

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestDurationInText: the text handler writes an access line's duration in
// seconds with six decimals, never in e-notation (a float64 of 71 µs would
// be written "7.1e-05").
func TestDurationInText(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{71 * time.Microsecond, "duration=0.000071"},
		{3 * time.Second, "duration=3.000000"},
		{0, "duration=0.000000"},
		{1500 * time.Nanosecond, "duration=0.000002"}, // rounded to the microsecond
		{2*time.Hour + 499*time.Nanosecond, "duration=7200.000000"},
		{-time.Second, "duration=0.000000"},
	} {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("access", Seconds("duration", c.d))
		if got := strings.TrimSpace(buf.String()); !strings.HasSuffix(got, " "+c.want) {
			t.Errorf("%v: text line %q, want it to end with %q", c.d, got, c.want)
		}
	}
}

// TestDurationInJSON: the JSON handler writes the duration as a number, with
// the same six decimals.
func TestDurationInJSON(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("access", Seconds("duration", 71*time.Microsecond))
	if !strings.Contains(buf.String(), `"duration":0.000071}`) {
		t.Errorf("JSON line %s, want \"duration\":0.000071", buf.String())
	}
	var line struct{ Duration any }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if f, ok := line.Duration.(float64); !ok || f != 0.000071 {
		t.Errorf("duration decodes as %T %v, want the number 0.000071", line.Duration, line.Duration)
	}
}

// TestDurationAsString: handlers that print a value with its String method
// (as the tests' log recorder does) see the same text.
func TestDurationAsString(t *testing.T) {
	if got := Seconds("duration", 71*time.Microsecond).Value.String(); got != "0.000071" {
		t.Errorf("String = %q, want 0.000071", got)
	}
}
