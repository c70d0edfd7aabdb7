// Command sluice is a TCP and UDP port forwarder: many rules in one process,
// load balancing, health checks, access control, graceful reload and drain.
//
// Usage:
//
//	sluice -l LISTEN -r REMOTE [-r REMOTE ...] [flags]   forward one port (quick mode)
//	sluice -c FILE [flags]                               run every rule of a config file
//	sluice --etcd URLS [flags]                           run the config stored in etcd (a fleet)
//	sluice cluster push|pull|status --etcd URLS          store or print a fleet's config; list its instances
//	sluice check -c FILE                                 validate a config and print it normalised
//	sluice backend RULE ADDRESS ready|drain|maint [flags] set a backend's state through the admin API
//	sluice version
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is the release version, set at link time with
// -ldflags "-X main.version=1.2.3"; "dev" otherwise.
var version = "dev"

// Exit codes, as docs/OPERATIONS.md (Signals and exit codes) documents them.
const (
	exitOK     = 0
	exitConfig = 1 // config or start-up error, a forced stop, or a failed admin request
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], notifySignals, os.Stdout, os.Stderr))
}

// notifySignals starts catching the signals a running sluice acts on and
// returns the channel they arrive on.
func notifySignals() <-chan os.Signal {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	return signals
}

// run is the whole program behind main: it parses args, runs until a signal
// stops it, and returns the exit code. Only the run modes catch signals
// (with catch, before anything else): check and version die by SIGINT and
// SIGTERM as any command does.
func run(args []string, catch func() <-chan os.Signal, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			if len(args) > 1 {
				fmt.Fprintf(stderr, "sluice version: unexpected argument %q\n", args[1])
				return exitUsage
			}
			fmt.Fprintf(stdout, "sluice %s (%s, %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return exitOK
		case "check":
			return check(args[1:], stdout, stderr)
		case "backend":
			return backend(args[1:], stdout, stderr)
		case "cluster":
			return cluster(args[1:], stdout, stderr)
		}
	}
	signals := catch()
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if err == errHelp {
			return exitOK
		}
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		fmt.Fprintln(stderr, "run 'sluice -h' for usage")
		return exitUsage
	}
	if opts.etcd.endpoints != "" {
		return serveFleet(opts, signals, stderr)
	}
	cfg, err := opts.config()
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitConfig
	}
	return serve(opts, cfg, signals, stderr)
}

// versionString prefers the link-time version and falls back to the module
// version recorded in the build.
func versionString() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
