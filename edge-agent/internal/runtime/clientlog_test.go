package runtime

import (
	"bytes"
	"errors"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// syncBuffer is a bytes.Buffer safe for the handler and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestClientLogsGoThroughSlogAtDebug(t *testing.T) {
	var out, leaked syncBuffer
	l := logrus.New()
	l.SetOutput(&leaked)
	routeLogrus(l, slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "containerd-client"))
	l.WithField("host", "127.0.0.1:5000").WithError(errors.New("connection refused")).Info("trying next host")
	l.Debug("resolving")
	got := out.String()
	for _, want := range []string{
		`level=DEBUG msg="trying next host" component=containerd-client containerdLevel=info err="connection refused" host=127.0.0.1:5000`,
		`level=DEBUG msg=resolving component=containerd-client containerdLevel=debug`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("slog output lacks %q:\n%s", want, got)
		}
	}
	if leaked.String() != "" {
		t.Errorf("logrus still wrote its own lines: %q", leaked.String())
	}

	// Above debug the library builds no entries.
	var quiet syncBuffer
	l2 := logrus.New()
	routeLogrus(l2, slog.New(slog.NewTextHandler(&quiet, nil)))
	if l2.IsLevelEnabled(logrus.ErrorLevel) {
		t.Error("logrus builds entries that slog drops")
	}
	l2.Error("dropped")
	if quiet.String() != "" {
		t.Errorf("an info-level slog got %q", quiet.String())
	}
}

// TestContainerdResolverLogsAreRouted: the real client's resolver, which
// logs at info when the registry answers 404, ends up in slog.
func TestContainerdResolverLogsAreRouted(t *testing.T) {
	std := log.L.Logger
	out0, fmt0, level0 := std.Out, std.Formatter, std.GetLevel()
	hooks0 := std.ReplaceHooks(logrus.LevelHooks{})
	std.ReplaceHooks(hooks0)
	t.Cleanup(func() {
		std.SetOutput(out0)
		std.SetFormatter(fmt0)
		std.SetLevel(level0)
		std.ReplaceHooks(hooks0)
	})
	var out syncBuffer
	RouteClientLogs(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	rt := newRuntime(t)
	if _, err := rt.EnsureImage(testCtx(t, time.Minute), env.registry.Addr+"/flotilla/busybox:no-such-tag", api.PullIfNotPresent); err == nil {
		t.Fatal("pulled a tag that does not exist")
	}
	if got := out.String(); !strings.Contains(got, `level=DEBUG msg="trying next host - response was http.StatusNotFound"`) ||
		!strings.Contains(got, "containerdLevel=info") {
		t.Fatalf("the resolver's log did not reach slog at debug:\n%s", got)
	}
}
