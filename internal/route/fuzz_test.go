package route

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzJudge checks that no input panics, that a route chosen for a prefix
// of the bytes is the route chosen for them all (a decision is final as
// more bytes arrive), and that at EOF Judge always decides.
func FuzzJudge(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "sniff", "testdata", "*.bin"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"))
	f.Add([]byte("SSH-2.0-x\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	tb := table(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		whole := tb.Judge(b, false).Route
		if end := tb.Judge(b, true).Route; end == NeedMore || (whole != NeedMore && end != whole) {
			t.Fatalf("at EOF chose %d; without EOF %d", end, whole)
		}
		step := max(1, len(b)/100)
		for i := 0; i < len(b); i += step {
			if got := tb.Judge(b[:i], false).Route; got != NeedMore && got != whole {
				t.Fatalf("first %d bytes chose %d; all %d chose %d", i, got, len(b), whole)
			}
		}
	})
}
