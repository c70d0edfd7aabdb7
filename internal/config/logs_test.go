package config

import (
	"strings"
	"testing"
)

// TestLogKeys checks access_log and log_file: their defaults, "off" for
// the access log only, and paths taken from the config file's directory.
func TestLogKeys(t *testing.T) {
	rule := "\n[[rule]]\n" + ok
	for _, tt := range []struct {
		name, file, doc     string
		wantAccess, wantLog string
	}{
		{"defaults", "/etc/sluice/sluice.toml", "", "stderr", "stderr"},
		{"access off", "/etc/sluice/sluice.toml", `access_log = "off"`, "off", "stderr"},
		{"absolute paths", "/etc/sluice/sluice.toml", "access_log = \"/var/log/sluice/access.log\"\nlog_file = \"/var/log/sluice/sluice.log\"",
			"/var/log/sluice/access.log", "/var/log/sluice/sluice.log"},
		{"relative paths", "/etc/sluice/sluice.toml", "access_log = \"logs/access.log\"\nlog_file = \"../sluice.log\"",
			"/etc/sluice/logs/access.log", "/etc/sluice.log"},
		{"stderr written out", "sluice.toml", "access_log = \"stderr\"\nlog_file = \"stderr\"", "stderr", "stderr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.file, []byte(tt.doc+rule))
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessLog != tt.wantAccess || c.LogFile != tt.wantLog {
				t.Errorf("access_log %q, log_file %q; want %q, %q", c.AccessLog, c.LogFile, tt.wantAccess, tt.wantLog)
			}
			again, err := Parse(tt.file, []byte(c.Format()))
			if err != nil || again.AccessLog != c.AccessLog || again.LogFile != c.LogFile {
				t.Errorf("Format round trip: %v, %+v", err, again)
			}
			if !strings.Contains(c.Format(), "access_log = ") || !strings.Contains(c.Format(), "log_file = ") {
				t.Errorf("Format leaves the log keys out:\n%s", c.Format())
			}
		})
	}
}

// TestLogKeysBad checks the messages for wrong log keys, each with its line.
func TestLogKeysBad(t *testing.T) {
	rule := "\n[[rule]]\n" + ok
	for _, tt := range []struct{ doc, want string }{
		{`log_file = "off"`, `sluice.toml:1: log_file "off": the log cannot be turned off (want "stderr" or a file path)`},
		{"\naccess_log = \"\"", `sluice.toml:2: access_log "": empty path (want "stderr", "off" or a file path)`},
		{`access_log = 1`, `sluice.toml:1: access_log 1: want a string, not an integer`},
		{`log_file = "a\u0000b"`, `sluice.toml:1: log_file "a\x00b": invalid path`},
		{`acess_log = "off"`, `sluice.toml:1: unknown key "acess_log" (did you mean "access_log"?)`},
	} {
		_, err := Parse("sluice.toml", []byte(tt.doc+rule))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\ngot  %v\nwant %s", tt.doc, err, tt.want)
		}
	}
}

// TestValidateGlobalsLogKeys checks the log flags of quick mode: defaults,
// and the same checks as in a file.
func TestValidateGlobalsLogKeys(t *testing.T) {
	c := &Config{}
	if err := ValidateGlobals(c); err != nil || c.AccessLog != "stderr" || c.LogFile != "stderr" {
		t.Errorf("ValidateGlobals: %v, access_log %q, log_file %q; want the defaults", err, c.AccessLog, c.LogFile)
	}
	c = &Config{AccessLog: "access.log", LogFile: "off"}
	want := `log_file "off": the log cannot be turned off (want "stderr" or a file path)`
	if err := ValidateGlobals(c); err == nil || err.Error() != want {
		t.Errorf("ValidateGlobals: %v, want %s", err, want)
	}
	c = &Config{AccessLog: "access.log"}
	if err := ValidateGlobals(c); err != nil || c.AccessLog != "access.log" {
		t.Errorf("ValidateGlobals: %v, access_log %q; want it kept (relative to the working directory)", err, c.AccessLog)
	}
}
