package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzRead feeds ReadHeader arbitrary bytes. The seed corpus, valid and
// invalid headers of both versions, is in testdata/fuzz/FuzzRead. It checks
// that ReadHeader does not panic; that its answer does not depend on how the
// bytes are split across reads; that it consumes exactly the header it
// accepts; and that every accepted header re-encodes, in its own version and
// in the other where that can express it, to bytes that read back as the
// same Header.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadHeader(r)
		for how, other := range map[string]io.Reader{
			"one-byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
			"data-err": iotest.DataErrReader(bytes.NewReader(data)),
		} {
			h2, err2 := ReadHeader(other)
			if h2 != h || errString(err2) != errString(err) {
				t.Fatalf("%q: whole: %+v, %v\n%s: %+v, %v", data, h, err, how, h2, err2)
			}
		}
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%q: unexpected kind of error: %v", data, err)
			}
			return
		}
		checkConsumed(t, data, h, len(data)-r.Len())
		checkReencodes(t, h)
	})
}

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkConsumed checks that reading h from data consumed exactly the header:
// the line up to its first CRLF (v1) or the length the fixed part announces
// (v2).
func checkConsumed(t *testing.T, data []byte, h Header, consumed int) {
	t.Helper()
	header := data[:consumed]
	switch h.Version {
	case 1:
		if consumed > maxV1Len || bytes.Index(header, []byte("\r\n")) != consumed-2 {
			t.Fatalf("%q: v1 header accepted after consuming %q", data, header)
		}
	case 2:
		if consumed < v2FixedLen || consumed != v2FixedLen+int(binary.BigEndian.Uint16(header[14:16])) {
			t.Fatalf("%q: v2 header accepted after consuming %d bytes", data, consumed)
		}
	default:
		t.Fatalf("%q: accepted header has version %d", data, h.Version)
	}
}

// checkReencodes checks that h survives encoding in each version that can
// carry it.
func checkReencodes(t *testing.T, h Header) {
	t.Helper()
	encodings := map[int][]byte{2: h.AppendV2(nil)}
	if h.Version == 1 || (h.Command == Proxy && h.Transport != UDP) {
		encodings[1] = h.AppendV1(nil)
	}
	for version, wire := range encodings {
		want := h
		want.Version = version
		r := bytes.NewReader(wire)
		got, err := ReadHeader(r)
		if err != nil || got != want || r.Len() != 0 {
			t.Fatalf("%+v re-encoded as %q reads back as %+v, %v (%d bytes left); want %+v",
				h, wire, got, err, r.Len(), want)
		}
	}
}
