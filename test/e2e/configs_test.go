package e2e

// badConfig is a config sluice must reject, and the message it must print.
type badConfig struct {
	name   string
	config string
	want   string // expected in stderr; FILE stands for the config's path
}

// badConfigs are checked by TestBadConfigs. The messages are the ones
// internal/config's own tests pin down; here they are checked end to end,
// through the binary, with the file name the user passed.
var badConfigs = []badConfig{
	{
		name: "backend without port",
		config: `[[rule]]
name = "web"
listen = "127.0.0.1:8080"
backends = ["10.0.0.5"]
`,
		want: `FILE:4: rule "web": backend "10.0.0.5": missing port`,
	},
}
