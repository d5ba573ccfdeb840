// Package badgerlog routes Badger's log to slog for the hub's two Badger
// databases (the object store and the metrics series): errors and
// warnings at their level, Badger's chatty info and debug lines nowhere,
// and the cache monitor's advice at debug, for the reason below.
package badgerlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// cacheAdvice are the format strings of the two warnings Badger's cache
// monitor (v4, db.go, monitorCache) logs every minute when a cache's hit
// ratio is below 0.4 and its evicted entries lived less than 10 s on
// average. They go to debug, not warn: Badger counts every block lookup
// of its compactions, which read past the cache and never fill it, as a
// miss, so a database written more than it is read stays below 0.4 at any
// cache size, and the hub's caches are small on purpose (the object store
// serves the kinds it reads often from memory; metrics reads are scans of
// one node's series). A busy hub therefore logged a multi-line warning a
// minute that called for no action. BenchmarkSeriesBlockCache
// (hub/internal/metrics) measures it.
var cacheAdvice = map[string]bool{
	"%s might be too small. Metrics: %s\n":      true,
	"Cache life expectancy (in seconds): %+v\n": true,
}

// Logger is a badger.Logger.
type Logger struct{ l *slog.Logger }

// New returns a Logger that writes to l.
func New(l *slog.Logger) Logger { return Logger{l: l} }

// Errorf logs at error.
func (a Logger) Errorf(format string, args ...any) { a.log(slog.LevelError, format, args) }

// Warningf logs at warn, but the cache monitor's advice at debug.
func (a Logger) Warningf(format string, args ...any) {
	level := slog.LevelWarn
	if cacheAdvice[format] {
		level = slog.LevelDebug
	}
	a.log(level, format, args)
}

// Infof drops Badger's progress lines (compactions, flushes, replay).
func (Logger) Infof(string, ...any) {}

// Debugf drops Badger's debug lines.
func (Logger) Debugf(string, ...any) {}

func (a Logger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	a.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
