package logs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// fakeAgent answers requests the way an agent does, from an in-memory
// run, in pages of pageSize bytes. It replies from its own goroutine,
// like the MQTT client delivering the agent's reply.
type fakeAgent struct {
	t        *testing.T
	f        *Fetcher
	pageSize int64

	mu       sync.Mutex
	data     []byte
	ended    bool
	requests []wire.LogRequest
	silent   bool // drop requests, as an offline node
	notFound bool
	grew     chan struct{}
}

func (a *fakeAgent) Publish(_ context.Context, topic string, _ byte, _ bool, payload []byte) error {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		a.t.Fatalf("hub sent a bad request: %v", err)
	}
	var req wire.LogRequest
	if err := wire.DecodePayload(env, topic, &req); err != nil {
		a.t.Fatal(err)
	}
	a.mu.Lock()
	a.requests = append(a.requests, req)
	silent := a.silent
	a.mu.Unlock()
	if silent {
		return nil
	}
	go a.answer(env.Node, req)
	return nil
}

func (a *fakeAgent) answer(node string, req wire.LogRequest) {
	a.mu.Lock()
	if a.notFound {
		a.mu.Unlock()
		a.reply(node, wire.LogReply{ID: req.ID, Error: "no such container", Reason: "NotFound"})
		return
	}
	from := int64(0)
	if req.Cursor != nil {
		from = req.Cursor.Offset
	} else if req.TailLines != nil {
		lines := strings.SplitAfter(string(a.data), "\n")
		if n := int(*req.TailLines); n < len(lines) {
			from = int64(len(strings.Join(lines[:len(lines)-n-1], "")))
		}
	}
	if from >= int64(len(a.data)) && req.WaitSeconds > 0 && !a.ended {
		grew := a.grew
		a.mu.Unlock()
		select {
		case <-grew:
		case <-time.After(time.Duration(req.WaitSeconds * float64(time.Second))):
		}
		a.mu.Lock()
	}
	limit := min(a.pageSize, req.LimitBytes)
	end := min(int64(len(a.data)), from+limit)
	rep := wire.LogReply{ID: req.ID, Data: append([]byte(nil), a.data[from:end]...), Cursor: wire.LogCursor{Offset: end}, More: end < int64(len(a.data))}
	rep.Ended = a.ended && !rep.More
	a.mu.Unlock()
	a.reply(node, rep)
}

func (a *fakeAgent) reply(node string, r wire.LogReply) {
	b, _ := wire.Encode(wire.TypeLogReply, node, 1, time.Now(), r)
	a.f.HandleReply(wire.NodeTopic(node, wire.TopicReplies), b)
}

func (a *fakeAgent) write(s string) {
	a.mu.Lock()
	a.data = append(a.data, s...)
	close(a.grew)
	a.grew = make(chan struct{})
	a.mu.Unlock()
}

func newAgent(t *testing.T, data string, page int64) *fakeAgent {
	a := &fakeAgent{t: t, pageSize: page, data: []byte(data), grew: make(chan struct{})}
	a.f = New(Options{Publisher: a, Timeout: 500 * time.Millisecond, FollowWait: time.Second, Logger: slog.New(slog.DiscardHandler)})
	return a
}

func TestStreamPagesThroughALongLog(t *testing.T) {
	a := newAgent(t, strings.Repeat("0123456789\n", 100), 64)
	var out bytes.Buffer
	if err := a.f.Stream(context.Background(), "n1", Query{Namespace: "d", Pod: "p", UID: "u", Container: "c"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != string(a.data) {
		t.Fatalf("got %d bytes, want %d", out.Len(), len(a.data))
	}
	if len(a.requests) != 1100/64+1 {
		t.Errorf("%d requests for 1,100 bytes in 64-byte pages", len(a.requests))
	}
	for _, r := range a.requests[1:] {
		if r.Cursor == nil || r.WaitSeconds != 0 {
			t.Fatalf("a page request without a cursor, or waiting: %+v", r)
		}
	}
}

func TestStreamHonoursLimitBytes(t *testing.T) {
	a := newAgent(t, strings.Repeat("x", 1000), 64)
	var out bytes.Buffer
	if err := a.f.Stream(context.Background(), "n1", Query{Namespace: "d", Pod: "p", UID: "u", Container: "c", LimitBytes: 100}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 100 {
		t.Errorf("wrote %d bytes, limit 100", out.Len())
	}
}

func TestFollowStreamsNewOutputUntilTheRunEnds(t *testing.T) {
	a := newAgent(t, "one\n", 1<<20)
	pr, pw := newPipe()
	done := make(chan error, 1)
	go func() {
		done <- a.f.Stream(context.Background(), "n1", Query{Namespace: "d", Pod: "p", UID: "u", Container: "c", Follow: true}, pw, nil)
	}()
	pr.waitFor(t, "one\n")
	a.write("two\n")
	pr.waitFor(t, "one\ntwo\n")
	a.mu.Lock()
	a.ended = true
	a.mu.Unlock()
	a.write("three\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pr.waitFor(t, "one\ntwo\nthree\n")
	for _, r := range a.requests[1:] {
		if r.WaitSeconds != 1 {
			t.Errorf("follow request without the wait: %+v", r)
		}
	}
}

func TestFollowStopsWithTheContext(t *testing.T) {
	a := newAgent(t, "one\n", 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	_, pw := newPipe()
	done := make(chan error, 1)
	go func() {
		done <- a.f.Stream(ctx, "n1", Query{Namespace: "d", Pod: "p", UID: "u", Container: "c", Follow: true}, pw, nil)
	}()
	for {
		a.mu.Lock()
		n := len(a.requests)
		a.mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("cancelled follow: %v", err)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	a := newAgent(t, "", 64)
	a.notFound = true
	err := a.f.Stream(context.Background(), "n1", Query{Namespace: "d", Pod: "p", UID: "u", Container: "c"}, &bytes.Buffer{}, nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing container: %v", err)
	}
	// The agent's text as it is: the API adds the class ("Error from
	// server (NotFound): "), so "not found: " here would be said twice.
	if err == nil || err.Error() != "no such container" {
		t.Errorf("missing container: %q, want the agent's text", err)
	}
	a.notFound, a.silent = false, true
	err = a.f.Stream(context.Background(), "n1", Query{Namespace: "d", Pod: "p", UID: "u", Container: "c"}, &bytes.Buffer{}, nil)
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("silent node: %v", err)
	}
	a.f.mu.Lock()
	left := len(a.f.waiting)
	a.f.mu.Unlock()
	if left != 0 {
		t.Errorf("%d requests still waiting after their timeout", left)
	}
}

func TestStrayRepliesAreDropped(t *testing.T) {
	a := newAgent(t, "", 64)
	a.reply("n1", wire.LogReply{ID: "nobody-asked"})
	a.f.HandleReply(wire.NodeTopic("n1", wire.TopicReplies), []byte("garbage"))
}

// pipe is a concurrency-safe buffer to watch a stream's output.
type pipe struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newPipe() (*pipe, *pipe) { p := &pipe{}; return p, p }

func (p *pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *pipe) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		got := p.buf.String()
		p.mu.Unlock()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream = %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
