package config

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that every rejection is a
// non-empty *Errors, and that every accepted config survives Format.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullExample))
	f.Add([]byte(everyKey))
	f.Add([]byte("[[rule]]\n" + ok + "[rule.health_check]\nsend = \"\\u0001\"\n[[rule.backends]]\naddress = \"unix:/x\"\n"))
	f.Add([]byte("rule = [{ name = \"a\", listen = \"[::ffff:1.2.3.4]:1\", backends = [\"[fe80::1%eth0]:2\"], bandwidth = \"0.5KiB/s\" }]\n"))
	f.Add([]byte("[defaults]\nallow = [\"::ffff:10.0.0.0/104\"]\nrate_per_ip = 1e300\n[[rule]]\n" + ok))
	f.Add([]byte("a = 1\n[rule]\nx.y = [[1], {}]\n"))
	f.Add([]byte(routesExample))
	f.Add([]byte(tlsExample))
	f.Add([]byte(tlsDefaults))
	f.Add([]byte("[[rule]]\nname = \"a\"\nlisten = \":1\"\nroute = [{ http_host = [\"[::1]\", \"*.A.b\"], detect = \"http\", backends = [\"b:1\"], tls = { certificates = [{ cert = \"c\", key = \"k\" }] } }]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Fatalf("rejection is not a non-empty *Errors: %T %v", err, err)
			}
			for _, e := range *errs {
				if e.Message == "" {
					t.Fatalf("empty message in %v", err)
				}
			}
			return
		}
		out := c.Format()
		again, err := Parse("f.toml", []byte(out))
		if err != nil {
			t.Fatalf("Parse(Format()) failed: %v\ninput:\n%s\nformatted:\n%s", err, data, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the config\ninput:\n%s\nformatted:\n%s\ngot  %+v\nwant %+v", data, out, again, c)
		}
	})
}
