package fleet

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cacheHeader starts the first line of a cache file; the revision follows.
// It is a TOML comment, so the cache is also a config file sluice -c can
// run.
const cacheHeader = "# sluice: etcd config cache, revision "

// WriteCache writes doc, the config document at revision rev, to path
// atomically: a temporary file in the same directory, synced, renamed.
func WriteCache(path string, doc []byte, rev int64) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".sluice-cache-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a rename, nothing is there
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "%s%d\n", cacheHeader, rev)
	w.Write(doc)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ReadCache reads a cache file WriteCache wrote: the document and its
// revision.
func ReadCache(path string) ([]byte, int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	first, doc, ok := bytes.Cut(data, []byte("\n"))
	rev, err := strconv.ParseInt(strings.TrimPrefix(string(first), cacheHeader), 10, 64)
	if !ok || !strings.HasPrefix(string(first), cacheHeader) || err != nil {
		return nil, 0, fmt.Errorf("%s: not a sluice config cache (no revision line)", path)
	}
	return doc, rev, nil
}
