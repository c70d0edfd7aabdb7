package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"sluice/internal/admin"
	"sluice/internal/config"
	"sluice/internal/handover"
	"sluice/internal/metrics"
	"sluice/internal/server"
)

// daemon is a running sluice: the server, its admin API, and what reloads
// them.
type daemon struct {
	opts   *options
	logs   *logs
	logger *slog.Logger // logs.logger: log_file
	srv    *server.Server
	notify *notifier
	reg    *prometheus.Registry // what the admin API's /metrics serves
	m      *metrics.Metrics     // counts reloads, among the rest
	fleet  *fleetLink           // nil unless the config comes from etcd
	// stopping is set once a stop signal or an upgrade begins the drain:
	// reloads asked for from then on are ignored.
	stopping atomic.Bool

	// reloading serializes reloads (read, check, apply) without holding mu,
	// so a stop never waits for a config file to be read.
	reloading sync.Mutex

	mu      sync.Mutex // guards the following fields; held while a reload applies
	cfg     *config.Config
	admin   *admin.Server // nil unless the admin API is on
	adminLn net.Listener  // the admin API's socket, for an upgrade to hand over
}

// serve runs cfg until SIGTERM or SIGINT, then drains and returns the exit
// code. SIGHUP reloads the config file; SIGUSR1 reopens the log files;
// SIGUSR2 hands the listening sockets to a new process running the binary
// on disk (hitless upgrade). A second stop signal exits at once.
func serve(opts *options, cfg *config.Config, signals <-chan os.Signal, stderr io.Writer) int {
	return serveWith(opts, cfg, signals, stderr, nil)
}

// serveWith is serve with the config from etcd when fl is not nil: its
// changes are applied as SIGHUP's reloads are.
func serveWith(opts *options, cfg *config.Config, signals <-chan os.Signal, stderr io.Writer, fl *fleetLink) int {
	d := &daemon{opts: opts, cfg: cfg, notify: newNotifier(), fleet: fl}
	lg, err := openLogs(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitConfig
	}
	defer lg.close()
	d.logs, d.logger = lg, lg.logger
	raiseFileLimit(d.logger)
	inherited := handover.FromEnv()
	if cfg.Admin != "" {
		ln, err := server.ListenAdmin(inherited, cfg.Admin)
		if err != nil {
			fmt.Fprintf(stderr, "sluice: admin: listen %s: %v\n", cfg.Admin, err)
			return exitConfig
		}
		d.adminLn = ln
	}
	d.reg = prometheus.NewRegistry()
	m, err := metrics.New(d.reg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: metrics: %v\n", err)
		return exitConfig
	}
	d.m = m
	m.SetLogDropSource(lg.dropped)
	m.SetBuildInfo(versionString(), runtime.Version())
	d.srv = server.New(server.Options{Logger: d.logger, AccessLogger: lg.accessLogger, Metrics: m, Inherited: inherited,
		Follow: d.fleet.follower(), Stored: d.fleet.stored()})
	if err := d.srv.Start(cfg); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		if d.adminLn != nil {
			d.adminLn.Close()
		}
		return exitConfig
	}
	m.ConfigLoaded(time.Now())
	if ln := d.adminLn; ln != nil {
		// Held until d.admin is set: a request may reload at once.
		d.mu.Lock()
		d.admin, err = admin.Serve(ln, d.adminOptions(cfg))
		d.mu.Unlock()
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			d.srv.Shutdown()
			return exitConfig
		}
		d.logger.Info("admin API listening", "admin", ln.Addr().String(), "token", cfg.AdminToken != "")
	}
	d.logger.Info("started", "version", versionString(), "rules", len(cfg.Rules), "pid", os.Getpid(), "inherited", inherited != nil)
	if err := handover.Ready(); err != nil {
		d.logger.Warn("cannot tell the process this one replaces that it serves", "error", err.Error())
	}
	if d.fleet != nil {
		d.fleet.start(d)
		defer d.fleet.src.Stop()
	}
	d.notified(d.notify.ready(os.Getpid()))
	return d.run(signals)
}

// run serves signals until one stops sluice, and returns the exit code:
// SIGTERM and SIGINT drain and stop, SIGHUP reloads, SIGUSR1 reopens the
// log files, SIGUSR2 hands over to a new process and then drains.
func (d *daemon) run(signals <-chan os.Signal) int {
	reloads := d.reloader()
	for sig := range signals {
		switch sig {
		case syscall.SIGTERM, syscall.SIGINT:
			d.notified(d.notify.stopping())
			return d.drain(sig, signals)
		case syscall.SIGHUP:
			select {
			case reloads <- struct{}{}:
			default: // one is asked for already; it will read the file as it is then
			}
		case syscall.SIGUSR1:
			d.logs.reopen()
		case syscall.SIGUSR2:
			if err := d.upgrade(); err != nil {
				d.logger.Error("upgrade failed; still serving", "error", err.Error())
				continue
			}
			d.stopAdmin() // the new process answers on the admin socket now
			return d.drain(sig, signals)
		}
	}
	return exitOK
}

// reloader starts the goroutine that serves SIGHUP's reloads, one after
// another, and returns where to ask for one. The signal loop only asks, so
// a stop signal is served at once even while a reload still reads or checks
// a large config file; that reload then finds sluice stopping and changes
// nothing. Requests that come while one is waiting fold into it.
func (d *daemon) reloader() chan<- struct{} {
	reloads := make(chan struct{}, 1)
	go func() {
		for range reloads {
			d.reload()
		}
	}()
	return reloads
}

// reload reads the config file (or etcd's document) again and applies it
// by diff. A config with errors changes nothing; each error is logged.
func (d *daemon) reload() (server.Report, error) {
	return d.reloadWith(d.loadConfig)
}

// loadConfig reads the config as a reload does: the file, or the
// document stored in etcd.
func (d *daemon) loadConfig() (*config.Config, error) {
	if d.fleet == nil {
		return d.opts.config()
	}
	doc, err := d.fleet.src.Current(context.Background())
	if err != nil {
		return nil, err
	}
	return d.opts.configData(d.fleet.o.ConfigKey(), doc)
}

// reloadWith applies the config load returns, as a reload; SIGHUP, the
// admin API and etcd's changes all come through here.
func (d *daemon) reloadWith(load func() (*config.Config, error)) (server.Report, error) {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	if d.stopping.Load() {
		d.logger.Warn(reloadIgnored)
		return server.Report{}, server.ErrStopping
	}
	d.notified(d.notify.reloading())
	defer func() { d.notified(d.notify.ready(os.Getpid())) }()
	if d.opts.configFile == "" && d.fleet == nil {
		d.logger.Warn("reload: nothing to reload in quick mode (no config file)")
		return server.Report{}, fmt.Errorf("no config file: sluice runs in quick mode")
	}
	cfg, err := load()
	if err == nil {
		var rep server.Report
		if rep, err = d.apply(cfg); err == nil {
			d.m.Reloaded(nil, time.Now())
			return rep, nil
		}
	}
	if errors.Is(err, server.ErrStopping) {
		d.logger.Warn(reloadIgnored)
		return server.Report{}, err
	}
	d.m.Reloaded(err, time.Now())
	for _, line := range strings.Split(err.Error(), "\n") {
		d.logger.Error("reload rejected: config unchanged", "error", line)
	}
	return server.Report{}, err
}

// apply makes a checked config the running one: rules by diff, then the
// top-level settings.
func (d *daemon) apply(cfg *config.Config) (server.Report, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rep, err := d.srv.Reload(cfg)
	if err == nil {
		d.applyGlobals(cfg)
		if d.fleet != nil {
			d.fleet.reapply(d)
		}
	}
	return rep, err
}

// reloadIgnored is logged, at WARN, for a reload asked for while sluice
// drains to stop: the operator's timing, not a failure of sluice's.
const reloadIgnored = "reload ignored: sluice is shutting down"

// applyGlobals takes the top-level settings of a reloaded config that can
// change while running.
func (d *daemon) applyGlobals(cfg *config.Config) {
	cfg = d.logs.apply(cfg, d.cfg) // first, so that what follows is logged where it goes now
	if cfg.LogFormat != d.cfg.LogFormat {
		d.logger.Warn("reload: log_format changes take effect at the next start or upgrade")
	}
	switch {
	case cfg.Admin != d.cfg.Admin:
		if err := d.moveAdmin(cfg); err != nil {
			d.logger.Error("reload: admin address not changed", "admin", d.cfg.Admin, "error", err.Error())
			cfg = withAdmin(cfg, d.cfg) // what runs, for the next comparison
		}
	case cfg.AdminToken != d.cfg.AdminToken && d.admin != nil:
		if err := d.admin.SetToken(cfg.AdminToken); err != nil {
			d.logger.Error("reload: admin_token not changed", "error", err.Error())
			cfg = withAdmin(cfg, d.cfg)
		} else {
			d.logger.Info("reload: admin_token changed; requests now need the new one")
		}
	}
	d.cfg = cfg
}

// adminOptions are the admin API's options for cfg.
func (d *daemon) adminOptions(cfg *config.Config) admin.Options {
	o := admin.Options{Controller: controller{d.srv, d}, Gatherer: d.reg, Token: cfg.AdminToken, Logger: d.logger, Status: d.status}
	if d.fleet != nil {
		o.Fleet = d.fleet.view
	}
	return o
}

// moveAdmin serves the admin API on cfg's address (with cfg's token)
// instead of the running one, or stops it when cfg has none. The new socket
// is bound first, so a failure leaves the running API as it was. The old
// server stops in the background: the request that asked for this reload
// may be one of its own, waiting for its answer. Called with mu held.
func (d *daemon) moveAdmin(cfg *config.Config) error {
	var next *admin.Server
	var ln net.Listener
	if cfg.Admin != "" {
		var err error
		if ln, err = net.Listen("tcp", cfg.Admin); err != nil {
			return err
		}
		if next, err = admin.Serve(ln, d.adminOptions(cfg)); err != nil {
			return err
		}
	}
	if old := d.admin; old != nil {
		go shutdownAdmin(old)
	}
	d.admin, d.adminLn = next, ln
	if next == nil {
		d.logger.Info("reload: admin API stopped", "was", d.cfg.Admin)
	} else {
		d.logger.Info("reload: admin API moved", "admin", ln.Addr().String(), "was", d.cfg.Admin, "token", cfg.AdminToken != "")
	}
	return nil
}

// withAdmin returns a copy of cfg with the admin settings of running,
// which a reload could not change.
func withAdmin(cfg, running *config.Config) *config.Config {
	c := *cfg
	c.Admin, c.AdminToken = running.Admin, running.AdminToken
	return &c
}

// drain stops accepting and waits for live connections, unless another stop
// signal comes first.
func (d *daemon) drain(sig os.Signal, signals <-chan os.Signal) int {
	d.stopping.Store(true)
	d.logger.Info("stopping: draining live connections", "signal", sig.String(), "live", d.srv.Live())
	done := make(chan struct{})
	go func() {
		d.srv.Shutdown()
		close(done)
	}()
	for {
		select {
		case <-done:
			d.stopAdmin()
			d.logs.flush() // the last access lines, before the last word
			d.logger.Info("stopped")
			return exitOK
		case sig := <-signals:
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT:
				d.logger.Warn("second stop signal: exiting now", "signal", sig.String(), "live", d.srv.Live())
				return exitConfig
			case syscall.SIGHUP:
				d.logger.Warn(reloadIgnored, "signal", sig.String())
			case syscall.SIGUSR1:
				d.logs.reopen()
			}
		}
	}
}

// notified logs a failed notification of the service manager (which then
// has gone away); serving goes on.
func (d *daemon) notified(err error) {
	if err != nil {
		d.logger.Warn("cannot notify the service manager", "error", err.Error())
	}
}

// stopAdmin shuts the admin API down, letting requests in flight finish
// for a moment.
func (d *daemon) stopAdmin() {
	d.mu.Lock()
	a := d.admin
	d.admin = nil
	d.mu.Unlock()
	if a != nil {
		shutdownAdmin(a)
	}
}

// shutdownAdmin shuts an admin server down, giving requests in flight a
// moment to finish.
func shutdownAdmin(a *admin.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.Shutdown(ctx)
}

// controller is what the admin API drives: the server, plus reloading the
// config file as SIGHUP does.
type controller struct {
	*server.Server
	d *daemon
}

// Reload re-reads the config file and applies it.
func (c controller) Reload() (admin.ReloadReport, error) {
	rep, err := c.d.reload()
	return admin.ReloadReport(rep), err
}

// SetBackend sets a backend's state here and, in a fleet, stores it in
// etcd for every other instance to apply. The local change stands even
// when etcd cannot be written; the error says so.
func (c controller) SetBackend(rule, route, address string, ch admin.BackendChange) (admin.BackendStatus, error) {
	st, err := c.Server.SetBackend(rule, route, address, ch)
	if err != nil || c.d.fleet == nil {
		return st, err
	}
	if err := c.d.fleet.shareBackend(rule, route, address, ch, st); err != nil {
		c.d.logger.Error("fleet: backend state set here only", "rule", rule, "backend", address, "error", err.Error())
	}
	return st, nil
}

// parseLevel maps a validated log_level to its slog level.
func parseLevel(s string) slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return level
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit, since every
// relayed connection needs two descriptors, and logs the limit in force.
func raiseFileLimit(logger *slog.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		logger.Warn("cannot read the file descriptor limit", "error", err.Error())
		return
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = want.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err == nil {
			lim = want
		}
	}
	logger.Info("file descriptor limit", "limit", lim.Cur, "connections", lim.Cur/2)
}
