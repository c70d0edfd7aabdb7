package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"sluice/internal/config"
	"sluice/internal/server"
)

// serve runs cfg until SIGTERM or SIGINT, then drains and returns the exit
// code. A second stop signal exits at once.
func serve(cfg *config.Config, signals <-chan os.Signal, stderr io.Writer) int {
	logger := newLogger(cfg, stderr)
	raiseFileLimit(logger)
	srv := server.New(logger)
	if err := srv.Start(cfg); err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitConfig
	}
	logger.Info("started", "version", versionString(), "rules", len(cfg.Rules), "pid", os.Getpid())
	for sig := range signals {
		switch sig {
		case syscall.SIGTERM, syscall.SIGINT:
			return drain(srv, sig, signals, logger)
		default:
			logger.Warn("signal ignored: not supported yet", "signal", sig.String())
		}
	}
	return exitOK
}

// drain stops accepting and waits for live connections, unless another stop
// signal comes first.
func drain(srv *server.Server, sig os.Signal, signals <-chan os.Signal, logger *slog.Logger) int {
	logger.Info("stopping: draining live connections", "signal", sig.String(), "live", srv.Live())
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		close(done)
	}()
	for {
		select {
		case <-done:
			logger.Info("stopped")
			return exitOK
		case sig := <-signals:
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				logger.Warn("second stop signal: exiting now", "signal", sig.String(), "live", srv.Live())
				return exitConfig
			}
		}
	}
}

// newLogger builds the process logger from the config's level and format.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
