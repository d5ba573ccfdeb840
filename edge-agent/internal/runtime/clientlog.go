package runtime

import (
	"context"
	"io"
	"log/slog"
	"slices"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// RouteClientLogs sends what containerd's client library logs (through
// github.com/containerd/log, which is logrus's standard logger: the
// resolver's "trying next host", for one) to logger at debug level, with
// containerd's own level as the attribute containerdLevel, instead of to
// stderr in logrus's format. Below debug, the library builds no entries
// at all. The logger is process-wide, so main calls this once.
func RouteClientLogs(logger *slog.Logger) {
	routeLogrus(log.L.Logger, logger)
}

// routeLogrus makes l write nothing itself and hand every entry to to.
func routeLogrus(l *logrus.Logger, to *slog.Logger) {
	l.SetOutput(io.Discard)
	l.SetFormatter(silentFormatter{})
	l.ReplaceHooks(logrus.LevelHooks{})
	l.AddHook(slogHook{log: to})
	if to.Enabled(context.Background(), slog.LevelDebug) {
		l.SetLevel(logrus.DebugLevel)
	} else {
		l.SetLevel(logrus.PanicLevel)
	}
}

// silentFormatter formats nothing: the slogHook has logged the entry.
type silentFormatter struct{}

func (silentFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// slogHook logs logrus entries through slog at debug level.
type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !h.log.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	r := slog.NewRecord(e.Time, slog.LevelDebug, e.Message, 0)
	r.AddAttrs(slog.String("containerdLevel", e.Level.String()))
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := k
		if k == logrus.ErrorKey {
			name = "err"
		}
		r.AddAttrs(slog.Any(name, e.Data[k]))
	}
	// A handler that cannot write has nowhere better to say so.
	_ = h.log.Handler().Handle(ctx, r)
	return nil
}
