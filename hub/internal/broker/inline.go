package broker

import (
	"context"
	"hash/fnv"
	"runtime"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flotilla-edge/flotilla/pkg/link"
)

// InlineSession is the hub's own MQTT session on its embedded broker:
// mochi's inline client, with no socket and no outbound queue. It has the
// methods of link.Session the hub uses, so the hub speaks to the embedded
// broker through it and to an external one through pkg/link.
//
// The inline client bypasses the ACL (it is the hub, with every right);
// agents' publishes and deliveries to agents are still checked. The broker
// calls the inline subscriptions on the publishing agent's connection
// goroutine, after it has acknowledged the message; the session hands each
// message to one of a few workers, chosen by the node's topic prefix, and
// runs the handler there. So a node's messages are handled in its order,
// different nodes' concurrently (handlers must be safe for that), the
// connection goroutines keep small stacks, and a full worker queue holds
// back the agents whose messages wait for it rather than dropping them.
type InlineSession struct {
	srv       *mqtt.Server
	onConnect func(ctx context.Context)

	mu   sync.Mutex
	subs []inlineSub
}

// inlineMsg is one message on its way to a worker.
type inlineMsg struct {
	h       link.Handler
	topic   string
	payload []byte
}

// inlineQueue is each worker's queue length.
const inlineQueue = 256

type inlineSub struct {
	filter  string
	handler link.Handler
}

// Session returns the hub's inline session; onConnect, if set, runs once
// the subscriptions are in place (as link.Options.OnConnect does after
// each connect).
func (b *Broker) Session(onConnect func(ctx context.Context)) *InlineSession {
	return &InlineSession{srv: b.srv, onConnect: onConnect}
}

// Subscribe registers a subscription; call it before Run. A shared
// subscription ($share/group/filter) becomes a plain one: the embedded
// broker has exactly one hub, so the group has one member. QoS is
// irrelevant inline: nothing is queued or lost between broker and hub.
func (s *InlineSession) Subscribe(filter string, _ byte, h link.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, inlineSub{filter: unshare(filter), handler: h})
}

// unshare strips a $share/{group}/ prefix.
func unshare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}

// Run starts the workers, subscribes, runs onConnect, and waits for ctx
// to end.
func (s *InlineSession) Run(ctx context.Context) error {
	s.mu.Lock()
	subs := append([]inlineSub(nil), s.subs...)
	s.mu.Unlock()
	queues := make([]chan inlineMsg, max(2, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for i := range queues {
		q := make(chan inlineMsg, inlineQueue)
		queues[i] = q
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-q:
					m.h(m.topic, m.payload)
				}
			}
		})
	}
	defer wg.Wait()
	for i, sub := range subs {
		h := sub.handler
		err := s.srv.Subscribe(sub.filter, i+1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			q := queues[shard(pk.TopicName, len(queues))]
			select {
			case q <- inlineMsg{h: h, topic: pk.TopicName, payload: pk.Payload}:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return err
		}
	}
	defer func() {
		for i, sub := range subs {
			_ = s.srv.Unsubscribe(sub.filter, i+1)
		}
	}()
	if s.onConnect != nil {
		s.onConnect(ctx)
	}
	<-ctx.Done()
	return nil
}

// shard picks a worker by the topic without its last level: one node's
// topics (flotilla/v1/nodes/{node}/…) all go to the same worker.
func shard(topic string, n int) int {
	if i := strings.LastIndexByte(topic, '/'); i > 0 {
		topic = topic[:i]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	return int(h.Sum32() % uint32(n))
}

// Publish hands one message to the broker, which delivers it to the
// subscribers' queues (and retains it) before returning.
func (s *InlineSession) Publish(_ context.Context, topic string, qos byte, retained bool, payload []byte) error {
	return s.srv.Publish(topic, payload, retained, qos)
}
