package admin

import (
	"io/fs"
	"strings"
	"testing"
)

// maxStaticLines is the project's limit on a source file's length, which
// the dashboard's sources keep too: past it, split the file by concern.
const maxStaticLines = 600

// TestStaticFilesStaySmall: no embedded source of the pages is longer than
// maxStaticLines.
func TestStaticFilesStaySmall(t *testing.T) {
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if n := strings.Count(mustRead(name), "\n"); n > maxStaticLines {
			t.Errorf("%s: %d lines, over %d: split it by concern", name, n, maxStaticLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
