// Package logs fetches containers' output from the boards on demand. It
// sends a LogRequest on the node's requests topic and waits for the
// LogReply with the same ID on the node's replies topic; a long answer
// comes in pages, each request continuing from the previous reply's
// cursor. To follow, it keeps asking from the last cursor with a wait the
// agent honours, so a quiet container costs one request every few seconds
// and new output arrives within a fraction of one.
package logs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Errors a fetch fails with, for the API to map to HTTP codes.
var (
	ErrNotFound    = errors.New("not found")
	ErrBadRequest  = errors.New("bad request")
	ErrUnreachable = errors.New("node did not answer")
)

// replyError is an agent's refusal: its text as the agent wrote it, and
// its class (the reply's reason), which the API turns into the status
// and its "Error from server (NotFound): " prefix, so the text does not
// repeat it.
type replyError struct {
	class error
	msg   string
}

func (e *replyError) Error() string        { return e.msg }
func (e *replyError) Is(target error) bool { return target == e.class }

// Publisher sends one MQTT message (the hub's session).
type Publisher interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
}

// Options configure a Fetcher.
type Options struct {
	Publisher Publisher
	// Timeout is how long to wait for a reply beyond the wait a request
	// asks the agent for (default 15 s).
	Timeout time.Duration
	// FollowWait is the wait each follow request asks for (default 5 s).
	FollowWait time.Duration
	Logger     *slog.Logger
}

// Fetcher sends requests and matches replies.
type Fetcher struct {
	opts Options
	log  *slog.Logger
	seq  atomic.Uint64

	mu      sync.Mutex
	waiting map[string]chan wire.LogReply
}

// New returns a Fetcher. Subscribe its HandleReply to every node's replies
// topic with a plain (not shared) subscription: the reply must reach the
// hub process that asked.
func New(opts Options) *Fetcher {
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.FollowWait <= 0 {
		opts.FollowWait = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Fetcher{opts: opts, log: opts.Logger.With("component", "logs"), waiting: map[string]chan wire.LogReply{}}
}

// HandleReply takes a reply from an agent; one nobody waits for (it came
// too late, or was meant for another hub process) is dropped.
func (f *Fetcher) HandleReply(topic string, payload []byte) {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		f.log.Warn("dropping log reply", "err", err)
		return
	}
	var r wire.LogReply
	if err := wire.DecodePayload(env, topic, &r); err != nil {
		f.log.Warn("dropping log reply", "err", err)
		return
	}
	f.mu.Lock()
	ch := f.waiting[r.ID]
	delete(f.waiting, r.ID)
	f.mu.Unlock()
	if ch != nil {
		ch <- r // buffered, and delivered at most once
	}
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Request sends one request to node and waits for its reply.
func (f *Fetcher) Request(ctx context.Context, node string, req wire.LogRequest) (wire.LogReply, error) {
	req.ID = newID()
	ch := make(chan wire.LogReply, 1)
	f.mu.Lock()
	f.waiting[req.ID] = ch
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.waiting, req.ID)
		f.mu.Unlock()
	}()
	b, err := wire.Encode(wire.TypeLogRequest, node, f.seq.Add(1), time.Now(), req)
	if err != nil {
		return wire.LogReply{}, err
	}
	wait := f.opts.Timeout + time.Duration(req.WaitSeconds*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := f.opts.Publisher.Publish(ctx, wire.NodeTopic(node, wire.TopicRequests), 1, false, b); err != nil {
		return wire.LogReply{}, fmt.Errorf("ask node %s for logs: %w: %w", node, ErrUnreachable, err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			switch r.Reason {
			case "NotFound":
				return r, &replyError{class: ErrNotFound, msg: r.Error}
			case "BadRequest":
				return r, &replyError{class: ErrBadRequest, msg: r.Error}
			}
			return r, fmt.Errorf("node %s: %s", node, r.Error)
		}
		return r, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return wire.LogReply{}, fmt.Errorf("%w: node %s sent no logs within %s; is it online?", ErrUnreachable, node, wait)
		}
		return wire.LogReply{}, ctx.Err()
	}
}

// Query is what to fetch, with Kubernetes' log options.
type Query struct {
	Namespace, Pod, UID, Container string
	Previous, Follow               bool
	TailLines                      *int64
	SinceTime                      *time.Time
	// LimitBytes bounds the bytes written (0: no bound).
	LimitBytes int64
}

// Stream writes the output the query selects to w, calling flush after
// each piece. The first request's failure is returned before anything is
// written, so the caller can still answer with an error; once output has
// started, a failure ends the stream.
func (f *Fetcher) Stream(ctx context.Context, node string, q Query, w io.Writer, flush func()) error {
	if flush == nil {
		flush = func() {}
	}
	req := wire.LogRequest{
		Namespace: q.Namespace, Pod: q.Pod, UID: q.UID, Container: q.Container,
		Previous: q.Previous, TailLines: q.TailLines, SinceTime: q.SinceTime,
	}
	var written int64
	remaining := func() int64 {
		if q.LimitBytes <= 0 {
			return wire.MaxLogChunk
		}
		return min(q.LimitBytes-written, wire.MaxLogChunk)
	}
	req.LimitBytes = remaining()
	rep, err := f.Request(ctx, node, req)
	if err != nil {
		return err
	}
	failures := 0
	for {
		if len(rep.Data) > 0 {
			if _, err := w.Write(rep.Data); err != nil {
				return nil // the client went away
			}
			written += int64(len(rep.Data))
			flush()
		}
		if q.LimitBytes > 0 && written >= q.LimitBytes {
			return nil
		}
		if rep.Ended || (!rep.More && !q.Follow) {
			return nil
		}
		cursor := rep.Cursor
		next := wire.LogRequest{
			Namespace: q.Namespace, Pod: q.Pod, UID: q.UID, Container: q.Container,
			Cursor: &cursor, LimitBytes: remaining(),
		}
		if !rep.More {
			next.WaitSeconds = f.opts.FollowWait.Seconds()
		}
		asked := time.Now()
		r, err := f.Request(ctx, node, next)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// While following, the node may be reconnecting: keep the
			// cursor and try again, up to three times in a row.
			if failures++; !q.Follow || failures >= 3 || !errors.Is(err, ErrUnreachable) {
				return err
			}
			r = wire.LogReply{Cursor: cursor}
			if !sleep(ctx, time.Second) {
				return nil
			}
		} else {
			failures = 0
		}
		if next.WaitSeconds > 0 && len(r.Data) == 0 && !r.Ended && time.Since(asked) < 200*time.Millisecond {
			// An agent that does not hold requests: do not spin.
			if !sleep(ctx, time.Second) {
				return nil
			}
		}
		rep = r
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
