package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"sluice/internal/config"
	"sluice/internal/fleet"
)

const clusterUsage = `usage:
  sluice cluster push -c FILE --etcd URLS [--force | --revision N] [--state FILE]
      validate FILE here, then store it as the fleet's config: only if the
      stored config is still at the revision this machine last pulled or
      pushed (kept in --state), or at --revision N; --force writes anyway
  sluice cluster pull --etcd URLS [--state FILE]
      print the stored config (TOML); its revision goes to stderr and --state
  sluice cluster status --etcd URLS
      every live instance: name, version, applied revision, healthy, age, last error

common flags: --etcd-prefix P (default /sluice/), --etcd-ca F, --etcd-cert F, --etcd-key F;
etcd's user and password come from $SLUICE_ETCD_USERNAME and $SLUICE_ETCD_PASSWORD.
`

// clusterCmd is what "sluice cluster" was asked to do.
type clusterCmd struct {
	etcd       etcdFlags
	configFile string
	force      bool
	revision   int64 // -1: from the state file
	state      string
}

// cluster implements "sluice cluster push|pull|status".
func cluster(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "push" && args[0] != "pull" && args[0] != "status") {
		fmt.Fprint(stderr, clusterUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	verb := args[0]
	c := &clusterCmd{}
	fs := flag.NewFlagSet("sluice cluster "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clusterUsage) }
	c.etcd.register(fs, false)
	fs.StringVar(&c.configFile, "c", "", "config `file` to push")
	fs.BoolVar(&c.force, "force", false, "push whatever the stored revision")
	fs.Int64Var(&c.revision, "revision", -1, "push only if the stored config is at this `revision` (0: none stored)")
	fs.StringVar(&c.state, "state", "", "`file` that keeps the revision last pulled or pushed (default in the user's cache directory)")
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || c.etcd.endpoints == "" || (verb == "push") != (c.configFile != "") {
		fmt.Fprintln(stderr, "sluice cluster: give --etcd URLS, and -c FILE to push (only)")
		return exitUsage
	}
	if err := c.run(verb, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "sluice cluster %s: %v\n", verb, err)
		return exitConfig
	}
	return exitOK
}

// run does verb against etcd.
func (c *clusterCmd) run(verb string, stdout, stderr io.Writer) error {
	cli, o, err := c.etcd.connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx := context.Background()
	switch verb {
	case "pull":
		doc, rev, err := fleet.Pull(ctx, cli, o)
		if err != nil {
			return err
		}
		stdout.Write(doc)
		fmt.Fprintf(stderr, "sluice cluster pull: revision %d\n", rev)
		return c.remember(o, rev)
	case "status":
		list, err := fleet.Instances(ctx, cli, o)
		if err != nil {
			return err
		}
		printInstances(stdout, list)
		return nil
	}
	if _, err := config.Load(c.configFile); err != nil {
		return err
	}
	doc, err := os.ReadFile(c.configFile)
	if err != nil {
		return err
	}
	base := c.revision
	if base < 0 {
		base = c.recalled(o)
	}
	rev, err := fleet.Push(ctx, cli, o, doc, base, c.force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s: revision %d\n", o.ConfigKey(), rev)
	return c.remember(o, rev)
}

// printInstances writes one line per live instance.
func printInstances(w io.Writer, list []fleet.Instance) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tREVISION\tHEALTHY\tAGE\tLAST ERROR")
	for _, in := range list {
		age := time.Since(in.Started).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%t\t%s\t%s\n", in.Name, in.Version, in.Revision, in.Healthy, age,
			strings.ReplaceAll(in.LastError, "\n", "; "))
	}
	tw.Flush()
}

// statePath is the file that keeps the revisions last seen, by cluster.
func (c *clusterCmd) statePath() string {
	if c.state != "" {
		return c.state
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "sluice", "cluster-revisions.json")
}

// stateKey names a cluster and prefix in the state file.
func stateKey(o fleet.Options) string { return strings.Join(o.Endpoints, ",") + " " + o.Prefix }

// recalled returns the revision last pulled or pushed here, 0 if none.
func (c *clusterCmd) recalled(o fleet.Options) int64 {
	seen := map[string]int64{}
	if data, err := os.ReadFile(c.statePath()); err == nil {
		json.Unmarshal(data, &seen)
	}
	return seen[stateKey(o)]
}

// remember records rev as the revision last seen here.
func (c *clusterCmd) remember(o fleet.Options, rev int64) error {
	path := c.statePath()
	if path == "" {
		return errors.New("no state file: give --state FILE")
	}
	seen := map[string]int64{}
	if data, err := os.ReadFile(path); err == nil {
		json.Unmarshal(data, &seen)
	}
	seen[stateKey(o)] = rev
	data, _ := json.MarshalIndent(seen, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
