package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"sluice/internal/config"
	"sluice/internal/logsink"
)

// logFlushWait bounds how long a stop waits for the queued access lines to
// be written: a blocked access log must not keep sluice from exiting.
const logFlushWait = 5 * time.Second

// levelOff is above every level sluice logs at: the access logger's level
// while access_log is "off", so that no access line is even formatted.
const levelOff = slog.Level(1 << 20)

// logs are the process's two logs: the main one (log_file), written as
// lines come, and the access lines (access_log), which go through a queue
// so that writing one never holds up a connection. Both have the config's
// format and level.
type logs struct {
	main, access *logsink.File
	queue        *logsink.Queue // in front of access
	level        *slog.LevelVar // the main logger's level
	accessLevel  *slog.LevelVar // level, or levelOff
	logger       *slog.Logger   // to log_file
	accessLogger *slog.Logger   // to access_log, through queue
}

// openLogs opens the log files cfg names; "stderr" is stderr, which must
// be safe for concurrent writes (os.Stderr is).
func openLogs(cfg *config.Config, stderr io.Writer) (*logs, error) {
	main, err := logsink.Open(cfg.LogFile, stderr)
	if err != nil {
		return nil, fmt.Errorf("log_file: %w", err)
	}
	access, err := logsink.Open(cfg.AccessLog, stderr)
	if err != nil {
		main.Close()
		return nil, fmt.Errorf("access_log: %w", err)
	}
	l := &logs{main: main, access: access, level: new(slog.LevelVar), accessLevel: new(slog.LevelVar)}
	l.logger = newLogger(cfg.LogFormat, l.level, main)
	l.queue = logsink.NewQueue(access, logsink.QueueOptions{Warn: l.warnDropped})
	l.accessLogger = newLogger(cfg.LogFormat, l.accessLevel, l.queue)
	l.setLevel(cfg)
	return l, nil
}

// newLogger builds a logger writing to w in format, with its level in a
// variable that a reload can change.
func newLogger(format string, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// setLevel applies cfg's log_level, and turns the access lines off or on.
func (l *logs) setLevel(cfg *config.Config) {
	level := parseLevel(cfg.LogLevel)
	l.level.Set(level)
	if cfg.AccessLog == logsink.Off {
		level = levelOff
	}
	l.accessLevel.Set(level)
}

// warnDropped tells the main log that access lines were dropped. It runs
// on the queue's own goroutine, never on a connection's.
func (l *logs) warnDropped(dropped, total uint64) {
	l.logger.Warn("access log: lines dropped: it cannot keep up", "dropped", dropped, "total", total, "access_log", l.access.Path())
}

// dropped returns the access lines dropped so far.
func (l *logs) dropped() uint64 { return l.queue.Dropped() }

// reopen opens both log files again at their paths (SIGUSR1, after
// logrotate moved them). A file that cannot be opened is kept, and the
// error logged.
func (l *logs) reopen() {
	for _, lf := range []struct {
		key  string
		file *logsink.File
	}{{"log_file", l.main}, {"access_log", l.access}} {
		if err := lf.file.Reopen(); err != nil {
			l.logger.Error("reopen failed; still writing to the old file", "log", lf.key, "path", lf.file.Path(), "error", err.Error())
		}
	}
	l.logger.Info("log files reopened", "log_file", l.main.Path(), "access_log", l.access.Path())
}

// apply takes the log settings of a reloaded config: new paths are opened
// (a path that cannot be opened keeps the old one, with an error logged),
// and the level applies at once. It returns cfg with the paths in force.
func (l *logs) apply(cfg, running *config.Config) *config.Config {
	c := *cfg
	if c.LogFile != running.LogFile {
		if err := l.main.SetPath(c.LogFile); err != nil {
			l.logger.Error("reload: log_file not changed", "log_file", running.LogFile, "error", err.Error())
			c.LogFile = running.LogFile
		} else {
			l.logger.Info("reload: log_file changed", "log_file", c.LogFile, "was", running.LogFile)
		}
	}
	if c.AccessLog != running.AccessLog {
		if err := l.access.SetPath(c.AccessLog); err != nil {
			l.logger.Error("reload: access_log not changed", "access_log", running.AccessLog, "error", err.Error())
			c.AccessLog = running.AccessLog
		} else {
			l.logger.Info("reload: access_log changed", "access_log", c.AccessLog, "was", running.AccessLog)
		}
	}
	l.setLevel(&c)
	return &c
}

// flush writes the queued access lines, waiting up to logFlushWait, and
// takes no more: call it when the last connection has ended.
func (l *logs) flush() {
	if err := l.queue.Close(logFlushWait); err != nil {
		l.logger.Warn("access log: lines left unwritten at exit", "error", err.Error())
	}
}

// close flushes the access lines and closes both files.
func (l *logs) close() {
	l.flush()
	l.access.Close()
	l.main.Close()
}
