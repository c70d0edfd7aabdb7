package sniff

// reader is a bounds-checked reader over a byte slice, after
// golang.org/x/crypto/cryptobyte's String: every read says whether the
// bytes were there, and a failed read leaves the reader empty, so that a
// parser can chain reads and check once.
type reader []byte

// bytes reads n bytes.
func (r *reader) bytes(n int) ([]byte, bool) {
	if n < 0 || len(*r) < n {
		*r = nil
		return nil, false
	}
	b := (*r)[:n]
	*r = (*r)[n:]
	return b, true
}

// skip reads and drops n bytes.
func (r *reader) skip(n int) bool {
	_, ok := r.bytes(n)
	return ok
}

// uint8 reads one byte.
func (r *reader) uint8() (uint8, bool) {
	b, ok := r.bytes(1)
	if !ok {
		return 0, false
	}
	return b[0], true
}

// uint16 reads a big-endian 16-bit number.
func (r *reader) uint16() (uint16, bool) {
	b, ok := r.bytes(2)
	if !ok {
		return 0, false
	}
	return uint16(b[0])<<8 | uint16(b[1]), true
}

// prefixed8 reads a vector with a one-byte length.
func (r *reader) prefixed8() (reader, bool) {
	n, ok := r.uint8()
	if !ok {
		return nil, false
	}
	b, ok := r.bytes(int(n))
	return reader(b), ok
}

// prefixed16 reads a vector with a two-byte length.
func (r *reader) prefixed16() (reader, bool) {
	n, ok := r.uint16()
	if !ok {
		return nil, false
	}
	b, ok := r.bytes(int(n))
	return reader(b), ok
}

// empty says whether everything has been read.
func (r *reader) empty() bool {
	return len(*r) == 0
}
