package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
)

// ParseValue reads one key's value: "ip:port" ("[v6]:port"), or the JSON
// object {"address": "ip:port", "weight": N} with weight optional
// (default 1, else at least 1).
func ParseValue(v []byte) (Backend, error) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '{' {
		var obj struct {
			Address *string `json:"address"`
			Weight  *int    `json:"weight"`
		}
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&obj); err != nil {
			return Backend{}, fmt.Errorf("value %q: %w", v, err)
		}
		if obj.Address == nil {
			return Backend{}, fmt.Errorf("value %q: no \"address\"", v)
		}
		b, err := parseAddr(*obj.Address)
		if err != nil {
			return Backend{}, err
		}
		if obj.Weight != nil {
			if *obj.Weight < 1 {
				return Backend{}, fmt.Errorf("value %q: weight %d: want 1 or more", v, *obj.Weight)
			}
			b.Weight = *obj.Weight
		}
		return b, nil
	}
	return parseAddr(string(v))
}

// parseAddr reads "ip:port" as a Backend of weight 1.
func parseAddr(s string) (Backend, error) {
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return Backend{}, fmt.Errorf("address %q: want an IP address and port (a discovered backend is not resolved)", s)
	case ap.Port() == 0:
		return Backend{}, fmt.Errorf("address %q: %w", s, errPortZero)
	case ap.Addr().IsUnspecified() || ap.Addr().IsMulticast():
		return Backend{}, fmt.Errorf("address %q: not an address to connect to", s)
	}
	return Backend{Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), Weight: 1}, nil
}

// errPortZero is a backend's port 0.
var errPortZero = errors.New("port 0")
