package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"sluice/internal/config"
	"sluice/internal/fleet"
)

// backendTimeout bounds the API request of "sluice backend".
const backendTimeout = 10 * time.Second

const backendUsage = `usage: sluice backend RULE ADDRESS ready|drain|maint [--weight N] [--route ROUTE]
                      [--admin ADDR] [--token-file FILE] [-c FILE]
                      [--etcd URLS [--etcd-prefix P]]

Sets a backend's state (and weight) through the admin API of a running
sluice, and prints the backend as it is then. ADDRESS is the backend as
configured (host:port or unix:/path). The admin address and token default
to the config file's admin and admin_token (then $SLUICE_ADMIN_TOKEN).
With --etcd URLS it writes the fleet's key state/backends/RULE/ROUTE/ADDRESS
instead, which every instance following that etcd applies.

flags:
`

// backendCmd is what "sluice backend" was asked to do.
type backendCmd struct {
	rule, address, state string
	route                string
	weight               int
	admin, tokenFile     string
	configFile           string
	etcd                 etcdFlags // --etcd: write the fleet's key instead
}

// backend implements "sluice backend": a PUT to the admin API. A request
// that fails prints the HTTP status and the API's reason on stderr.
func backend(args []string, stdout, stderr io.Writer) int {
	c, err := parseBackendArgs(args, stderr)
	if err == flag.ErrHelp {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice backend: %v\n", err)
		fmt.Fprint(stderr, "run 'sluice backend -h' for usage\n")
		return exitUsage
	}
	if c.etcd.endpoints != "" {
		if err := c.putEtcd(stdout); err != nil {
			fmt.Fprintf(stderr, "sluice backend: %v\n", err)
			return exitConfig
		}
		return exitOK
	}
	base, token, err := c.endpoint()
	if err != nil {
		fmt.Fprintf(stderr, "sluice backend: %v\n", err)
		return exitConfig
	}
	reply, err := c.put(base, token)
	if err != nil {
		fmt.Fprintf(stderr, "sluice backend: %v\n", err)
		return exitConfig
	}
	stdout.Write(reply)
	return exitOK
}

// parseBackendArgs reads RULE ADDRESS STATE and the flags, which may come
// before, between or after them.
func parseBackendArgs(args []string, stderr io.Writer) (*backendCmd, error) {
	c := &backendCmd{}
	fs := flag.NewFlagSet("sluice backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, backendUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&c.weight, "weight", 0, "also set the backend's weight to `N` (1 or more)")
	fs.StringVar(&c.route, "route", "", "the backend is one of this `route`'s (of a rule with routes)")
	fs.StringVar(&c.admin, "admin", "", "admin API `address` (default: the config's admin)")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the admin token from this `file`")
	fs.StringVar(&c.configFile, "c", "", "config `file` to take admin and admin_token from")
	c.etcd.register(fs, false)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 3 {
		return nil, fmt.Errorf("want RULE ADDRESS ready|drain|maint, got %d arguments", len(pos))
	}
	c.rule, c.address, c.state = pos[0], pos[1], pos[2]
	switch {
	case c.state != "ready" && c.state != "drain" && c.state != "maint":
		return nil, fmt.Errorf("state %q: want ready, drain or maint", c.state)
	case flagSet(fs, "weight") && c.weight < 1:
		return nil, fmt.Errorf("--weight %d: must be at least 1", c.weight)
	case c.admin == "" && c.configFile == "" && c.etcd.endpoints == "":
		return nil, errors.New("no admin address: give --admin ADDR or -c FILE")
	}
	return c, nil
}

// endpoint returns the admin API's base URL and the token to send.
func (c *backendCmd) endpoint() (string, string, error) {
	addr, token := c.admin, ""
	if c.configFile != "" {
		cfg, err := config.Load(c.configFile)
		if err != nil {
			return "", "", err
		}
		if addr == "" {
			addr = cfg.Admin
		}
		token = cfg.AdminToken
	}
	if addr == "" {
		return "", "", fmt.Errorf("%s has no admin address: give --admin ADDR", c.configFile)
	}
	if token == "" {
		token = os.Getenv(adminTokenEnv)
	}
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", "", err
		}
		token = strings.TrimSpace(string(b))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("admin address %q: %v", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1" // listening everywhere: ask on loopback
	}
	return "http://" + net.JoinHostPort(host, port), token, nil
}

// put sends the change and returns the reply's body, indented.
func (c *backendCmd) put(base, token string) ([]byte, error) {
	path := "/api/v1/rules/" + url.PathEscape(c.rule)
	if c.route != "" {
		path += "/routes/" + url.PathEscape(c.route)
	}
	path += "/backends/" + url.PathEscape(c.address)
	change := map[string]any{"state": c.state}
	if c.weight > 0 {
		change["weight"] = c.weight
	}
	body, _ := json.Marshal(change)
	req, err := http.NewRequest(http.MethodPut, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: backendTimeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(reply, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(reply))
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	var out bytes.Buffer
	if json.Indent(&out, reply, "", "  ") != nil {
		return reply, nil
	}
	return out.Bytes(), nil
}

// putEtcd stores the change as the fleet's backend state and prints the key
// and what it holds.
func (c *backendCmd) putEtcd(stdout io.Writer) error {
	cli, o, err := c.etcd.connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	st := fleet.BackendState{Rule: c.rule, Route: c.route, Address: c.address, State: c.state, Weight: c.weight}
	if err := fleet.PutBackend(context.Background(), cli, o, st); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: state %s", o.BackendKey(c.rule, c.route, c.address), c.state)
	if c.weight > 0 {
		fmt.Fprintf(stdout, ", weight %d", c.weight)
	}
	fmt.Fprintln(stdout)
	return nil
}
