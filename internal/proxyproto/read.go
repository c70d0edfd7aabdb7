package proxyproto

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// minHeaderLen is the length of the shortest header of either version,
// "PROXY UNKNOWN\r\n"; a version 2 header is at least 16 bytes.
const minHeaderLen = len(v1UnknownLine)

// maxEmptyReads bounds how many reads in a row may return nothing and no
// error before ReadHeader gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// ReadHeader reads one PROXY protocol header, version 1 or 2, from r and
// returns it. It never reads a byte past the end of a valid header: the
// bytes that follow stay in r, to be relayed.
//
// r is meant to be the connection itself (no bufio.Reader in between). Each
// read asks for no more bytes than the shortest valid header could still
// need, and works with whatever has arrived, so a header split across
// segments is fine and a malformed one is rejected as soon as enough of it is
// in to tell. The caller bounds the wait with a deadline on the connection
// (the specification suggests at least 3 seconds).
//
// A malformed header yields an *Error with the precise reason. A connection
// closed before any byte arrived yields an error wrapping io.EOF; closed in
// the middle of a header, one wrapping io.ErrUnexpectedEOF; any other read
// error (a deadline, a reset) is returned wrapped.
func ReadHeader(r io.Reader) (Header, error) {
	buf := make([]byte, 0, 64)
	var readErr error
	for empty := 0; ; {
		h, need, err := scan(buf)
		if err != nil {
			return Header{}, err
		}
		if need == 0 {
			return h, nil
		}
		if readErr != nil {
			return Header{}, readError(buf, readErr)
		}
		if empty >= maxEmptyReads {
			return Header{}, readError(buf, io.ErrNoProgress)
		}
		buf = slices.Grow(buf, need)
		var n int
		n, readErr = r.Read(buf[len(buf) : len(buf)+need])
		buf = buf[:len(buf)+n]
		if n == 0 && readErr == nil {
			empty++
		} else {
			empty = 0
		}
	}
}

// scan looks at the bytes of a header read so far. It returns the header
// once b holds all of it (need == 0), or how many more bytes a valid header
// needs at least (need > 0), or the reason b cannot begin a valid header.
// Its verdict on a prefix of b never contradicts its verdict on b, so the
// result does not depend on how the bytes were split across reads.
func scan(b []byte) (h Header, need int, err error) {
	if len(b) == 0 {
		return Header{}, minHeaderLen, nil
	}
	switch b[0] {
	case v1Prefix[0]:
		return scanV1(b)
	case v2Signature[0]:
		return scanV2(b)
	}
	return Header{}, 0, notProxy()
}

// notProxy rejects bytes that start neither a version 1 nor a version 2
// header.
func notProxy() error { return &Error{Reason: "not a PROXY protocol header"} }

// readError describes a read that failed after len(b) bytes of a header.
func readError(b []byte, err error) error {
	version := ""
	if len(b) > 0 && b[0] == v1Prefix[0] {
		version = "v1: "
	} else if len(b) > 0 {
		version = "v2: "
	}
	if errors.Is(err, io.EOF) {
		if len(b) == 0 {
			return fmt.Errorf("proxy protocol: connection closed before a header: %w", err)
		}
		return fmt.Errorf("proxy protocol: %sconnection closed after %d bytes of header: %w",
			version, len(b), io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("proxy protocol: %sreading header (%d bytes so far): %w", version, len(b), err)
}
