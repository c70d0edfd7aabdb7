package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/config"
	"sluice/internal/fleet"
)

// adminTokenEnv names the environment variable that gives the admin token
// when the config file does not (always, in quick mode).
const adminTokenEnv = "SLUICE_ADMIN_TOKEN"

// errHelp means -h was asked for and usage has been printed.
var errHelp = flag.ErrHelp

// options are the parsed command-line flags.
type options struct {
	configFile string
	quick      config.Quick
	admin      string
	logLevel   string
	logFormat  string
	accessLog  string
	logFile    string
	etcd       etcdFlags
}

// etcdFlags say where a fleet's config lives (see internal/fleet).
type etcdFlags struct {
	endpoints, prefix, ca, cert, key string
	instance, cache                  string // run mode only
}

// register adds the flags that reach etcd to fs; run adds --instance and
// --etcd-cache too.
func (e *etcdFlags) register(fs *flag.FlagSet, run bool) {
	fs.StringVar(&e.endpoints, "etcd", "", "etcd `URLs`, comma-separated: take the config from etcd (a fleet)")
	fs.StringVar(&e.prefix, "etcd-prefix", fleet.DefaultPrefix, "the `prefix` of sluice's keys in etcd")
	fs.StringVar(&e.ca, "etcd-ca", "", "CA certificate `file` to verify etcd with")
	fs.StringVar(&e.cert, "etcd-cert", "", "client certificate `file` for etcd")
	fs.StringVar(&e.key, "etcd-key", "", "client key `file` for etcd")
	if run {
		fs.StringVar(&e.instance, "instance", "", "this instance's `name` under instances/ (default: host name and pid)")
		fs.StringVar(&e.cache, "etcd-cache", "", "keep the last applied config in this `file`; served when etcd is unreachable at start")
	}
}

// options returns the fleet options the flags and environment give.
func (e *etcdFlags) options() (fleet.Options, error) {
	return fleet.OptionsFrom(e.endpoints, e.prefix, e.ca, e.cert, e.key)
}

// connect returns a client of the etcd the flags name, with the options
// it was made from; the caller closes it.
func (e *etcdFlags) connect() (*clientv3.Client, fleet.Options, error) {
	o, err := e.options()
	if err != nil {
		return nil, o, err
	}
	cli, err := fleet.Connect(o)
	return cli, o, err
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

const usageText = `sluice forwards TCP and UDP ports.

usage:
  sluice -l LISTEN -r REMOTE [-r REMOTE ...] [flags]   forward one port (quick mode)
  sluice -c FILE [flags]                               run every rule of a config file
  sluice --etcd URLS [--etcd-prefix P] [--instance NAME] [--etcd-cache FILE] [flags]
                                                       run the config stored in etcd, following it
  sluice cluster push|pull|status --etcd URLS          store or print the fleet's config; list its instances
  sluice check -c FILE                                 validate a config, print it normalised
  sluice backend RULE ADDRESS ready|drain|maint [--weight N]
                                                       set a backend's state through the admin API
  sluice version

LISTEN and REMOTE are host:port, :port, [v6]:port or unix:/path.
The admin token may be given in $SLUICE_ADMIN_TOKEN; etcd's user and password
in $SLUICE_ETCD_USERNAME and $SLUICE_ETCD_PASSWORD.

flags:
`

// parseFlags parses the flags of the run modes. Any error is a usage error.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var remotes, allow listFlag
	fs.StringVar(&o.configFile, "c", "", "run the rules of this config `file`")
	fs.StringVar(&o.quick.Listen, "l", "", "quick mode: `address` to listen on")
	fs.Var(&remotes, "r", "quick mode: remote `address` (repeat for several backends)")
	fs.StringVar(&o.quick.Protocol, "p", "", "quick mode: protocol tcp, udp or tcp+udp (default tcp)")
	fs.StringVar(&o.quick.Protocol, "protocol", "", "same as -p")
	fs.StringVar(&o.quick.Balance, "balance", "", "quick mode: round-robin, least-conn, random, source-hash or first")
	fs.StringVar(&o.quick.ConnectTimeout, "connect-timeout", "", "quick mode: dial timeout per backend (default 5s)")
	fs.StringVar(&o.quick.IdleTimeout, "idle-timeout", "", "quick mode: close after this long with no traffic (default 1h)")
	fs.StringVar(&o.quick.ProxyProtocol, "proxy-protocol", "", "quick mode: send a PROXY protocol header, v1 or v2")
	fs.Var(&allow, "allow", "quick mode: allow only clients in this `CIDR` (repeatable)")
	fs.IntVar(&o.quick.MaxConns, "max-conns", 0, "quick mode: most live connections (0 = no limit)")
	fs.StringVar(&o.quick.Congestion, "congestion-control", "", "quick mode: TCP congestion control: auto (cubic to loopback peers), system, or an algorithm such as bbr (default auto)")
	fs.IntVar(&o.quick.Workers, "workers", 0, "quick mode: event loops serving the listening socket `N` (default: one per CPU)")
	fs.StringVar(&o.admin, "admin", "", "serve the admin API, metrics and dashboard on this `address`")
	fs.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&o.logFormat, "log-format", "", "text or json (default text)")
	fs.StringVar(&o.accessLog, "access-log", "", "access lines to stderr, off, or this file `path` (default stderr; SIGUSR1 reopens it)")
	fs.StringVar(&o.logFile, "log-file", "", "other log lines to stderr or this file `path` (default stderr; SIGUSR1 reopens it)")
	o.etcd.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.quick.Remotes, o.quick.Allow = remotes, allow
	quick := o.quick.Listen != "" || len(remotes) > 0
	fromEtcd := o.etcd.endpoints != ""
	switch {
	case fromEtcd && (o.configFile != "" || quick):
		return nil, errors.New("--etcd cannot be combined with -c or -l/-r: the config comes from etcd")
	case fromEtcd:
		if quickOnlySet(fs) {
			return nil, errors.New("quick-mode flags cannot be combined with --etcd; set them in the stored config")
		}
		return o, nil
	case o.configFile != "" && quick:
		return nil, errors.New("-c cannot be combined with -l/-r: use a config file or quick mode")
	case o.configFile == "" && !quick:
		return nil, errors.New("nothing to do: give -c FILE, or -l LISTEN -r REMOTE")
	case quick && o.quick.Listen == "":
		return nil, errors.New("-r needs -l LISTEN")
	case quick && len(remotes) == 0:
		return nil, errors.New("-l needs at least one -r REMOTE")
	case !quick && quickOnlySet(fs):
		return nil, errors.New("-p, --balance, --connect-timeout, --idle-timeout, --proxy-protocol, --allow, --max-conns, --congestion-control and --workers are quick-mode flags; set them in the config file")
	case flagSet(fs, "workers") && o.quick.Workers < 1:
		return nil, fmt.Errorf("--workers %d: must be at least 1", o.quick.Workers)
	}
	return o, nil
}

// quickOnlySet reports whether a quick-mode-only flag was given.
func quickOnlySet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "p", "protocol", "balance", "connect-timeout", "idle-timeout", "proxy-protocol", "allow", "max-conns", "congestion-control", "workers":
			set = true
		}
	})
	return set
}

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// config builds the configuration the flags describe: the file, or the one
// quick-mode rule, with the global flags laid over it.
func (o *options) config() (*config.Config, error) {
	var cfg *config.Config
	var err error
	if o.configFile != "" {
		cfg, err = config.Load(o.configFile)
	} else {
		cfg, err = config.FromQuick(o.quick)
	}
	if err != nil {
		return nil, err
	}
	return o.overlay(cfg)
}

// configData builds the configuration of a document read from elsewhere
// than a file (etcd), named name in messages, with the global flags laid
// over it.
func (o *options) configData(name string, data []byte) (*config.Config, error) {
	cfg, err := config.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return o.overlay(cfg)
}

// overlay lays the global flags over cfg and checks the result.
func (o *options) overlay(cfg *config.Config) (*config.Config, error) {
	if o.admin != "" {
		cfg.Admin = o.admin
	}
	if token := os.Getenv(adminTokenEnv); token != "" && cfg.AdminToken == "" {
		cfg.AdminToken = token // quick mode has no file; a flag would show in ps
	}
	if o.logLevel != "" {
		cfg.LogLevel = o.logLevel
	}
	if o.logFormat != "" {
		cfg.LogFormat = o.logFormat
	}
	if o.accessLog != "" {
		cfg.AccessLog = o.accessLog
	}
	if o.logFile != "" {
		cfg.LogFile = o.logFile
	}
	if err := config.ValidateGlobals(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// check implements "sluice check -c FILE". Its errors are printed as the
// run modes print theirs.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config `file` to check")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitUsage
	}
	if *file == "" || fs.NArg() > 0 {
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "sluice: unexpected argument %q\n", fs.Arg(0))
		} else {
			fmt.Fprintln(stderr, "sluice: nothing to check: give -c FILE")
		}
		fmt.Fprintln(stderr, "usage: sluice check -c FILE")
		return exitUsage
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitConfig
	}
	fmt.Fprint(stdout, cfg.Format())
	reportDescriptors(stdout, stderr, cfg)
	return exitOK
}
