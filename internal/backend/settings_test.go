package backend

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"sluice/internal/congestion"
)

// TestSettingsEqualSeesEveryField changes each field of Settings in turn
// (and each field of the structs it holds) and asserts that Equal tells the
// two apart, so that a reload rebuilds the pool for any setting, the ones
// added later included. A field of a type this test cannot change fails it:
// teach changed the type.
func TestSettingsEqualSeesEveryField(t *testing.T) {
	base := Settings{
		Name:           "web",
		Backends:       []Target{{Address: Address{Network: "tcp", Host: "192.0.2.1", Port: 80}, Weight: 1}},
		Balance:        RoundRobin,
		Retries:        1,
		ConnectTimeout: time.Second,
		ResolveTTL:     time.Minute,
		HealthCheck:    &HealthCheck{Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Send: "ping", Expect: "pong"},
	}
	if !base.Equal(clone(base)) {
		t.Fatal("settings differ from their own copy")
	}
	var walk func(path string, get func(*Settings) reflect.Value)
	walk = func(path string, get func(*Settings) reflect.Value) {
		s := clone(base)
		v := get(&s)
		if v.Kind() == reflect.Struct && !leaf(v.Type()) {
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, func(s *Settings) reflect.Value { return get(s).Field(i) })
			}
			return
		}
		if !changed(v) {
			t.Errorf("%s: this test cannot change a %s; teach changed how", path, v.Type())
			return
		}
		if notCompared[path] {
			if !base.Equal(s) {
				t.Errorf("%s changed and Equal reports the settings unequal: a reload would lose the pool's health for it", path)
			}
			return
		}
		if base.Equal(s) {
			t.Errorf("%s changed, yet Equal reports the settings equal: a reload would keep the old pool", path)
		}
	}
	for i := range reflect.TypeFor[Settings]().NumField() {
		walk(reflect.TypeFor[Settings]().Field(i).Name, func(s *Settings) reflect.Value { return reflect.ValueOf(s).Elem().Field(i) })
	}
	// Inside the backend list and the health check.
	walk("Backends[0]", func(s *Settings) reflect.Value { return reflect.ValueOf(&s.Backends[0]).Elem() })
	walk("HealthCheck", func(s *Settings) reflect.Value { return reflect.ValueOf(s.HealthCheck).Elem() })
}

// leaf reports whether a struct type is one value, changed as a whole
// (see changed), not field by field.
func leaf(t reflect.Type) bool {
	return t == reflect.TypeFor[congestion.Choice]() || t == reflect.TypeFor[netip.Addr]()
}

// notCompared lists the fields Equal leaves out on purpose: how a pool
// reports, not what it is.
var notCompared = map[string]bool{"ObserveTLS": true}

// clone copies s deeply enough that changing the copy leaves s alone.
func clone(s Settings) Settings {
	s.Backends = append([]Target(nil), s.Backends...)
	if s.HealthCheck != nil {
		hc := *s.HealthCheck
		s.HealthCheck = &hc
	}
	return s
}

// changed gives v another value of its type and reports whether it could.
func changed(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint16, reflect.Uint32:
		v.SetUint(v.Uint() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		} else {
			v.SetZero()
		}
	case reflect.Func:
		if !v.IsNil() {
			return false
		}
		v.Set(reflect.MakeFunc(v.Type(), func([]reflect.Value) []reflect.Value { return nil }))
	case reflect.Struct:
		if a, ok := v.Interface().(netip.Addr); ok {
			b := netip.MustParseAddr("192.0.2.1")
			if a.IsValid() {
				b = a.Next()
			}
			v.Set(reflect.ValueOf(b))
			return b.IsValid()
		}
		if v.Type() != reflect.TypeFor[congestion.Choice]() {
			return false
		}
		c, err := congestion.Parse(congestion.System)
		if err != nil || c == v.Interface().(congestion.Choice) {
			return false
		}
		v.Set(reflect.ValueOf(c))
	default:
		return false
	}
	return true
}
