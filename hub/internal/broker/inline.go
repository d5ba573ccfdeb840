package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"sync"

	"github.com/flotilla-edge/flotilla/pkg/link"
)

// InlineSession is the hub's own MQTT session on its embedded broker: no
// socket, no outbound queue. It has the methods of link.Session the hub
// uses, so the hub speaks to the embedded broker through it and to an
// external one through pkg/link.
//
// The inline session bypasses Auth (it is the hub, with every right);
// agents' publishes and deliveries to agents are still checked. The broker
// hands a message to the inline subscriptions on the publishing agent's
// connection goroutine, before it acknowledges the message; the session
// passes each message to one of a few workers, chosen by the node's topic
// prefix, and runs the handler there. So a node's messages are handled in
// its order, different nodes' concurrently (handlers must be safe for
// that), and a full worker queue holds back the agents whose messages
// wait for it (their PUBACKs wait too) rather than dropping them.
type InlineSession struct {
	b         *Broker
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
	return &InlineSession{b: b, onConnect: onConnect}
}

// Subscribe registers a subscription; call it before Run. A shared
// subscription ($share/{group}/{filter}) joins its group as any client
// would, and gets no retained messages. QoS is irrelevant inline: nothing
// is queued or lost between broker and hub.
func (s *InlineSession) Subscribe(filter string, _ byte, h link.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, inlineSub{filter: filter, handler: h})
}

// inlineSink delivers a subscription's messages to the workers.
type inlineSink struct {
	ctx    context.Context
	h      link.Handler
	queues []chan inlineMsg
}

// deliver queues the message for its worker, waiting while the queue is
// full (the publisher is held back meanwhile) until the session ends or
// the publisher gives up (its connection closed).
func (k *inlineSink) deliver(m message, o origin) {
	q := k.queues[shard(m.topic, len(k.queues))]
	im := inlineMsg{h: k.h, topic: m.topic, payload: m.payload}
	select {
	case q <- im:
		return
	default:
	}
	stop, lazy := o.stop()
	if lazy {
		stop = o.from.stopChan()
	}
	select {
	case q <- im:
	case <-k.ctx.Done():
	case <-stop:
	}
}

// Run starts the workers, subscribes, runs onConnect, and waits for ctx
// to end.
func (s *InlineSession) Run(ctx context.Context) error {
	s.mu.Lock()
	subs := append([]inlineSub(nil), s.subs...)
	s.mu.Unlock()
	for _, sub := range subs {
		if !validFilter(sub.filter) {
			return fmt.Errorf("inline subscription: invalid filter %q", sub.filter)
		}
	}
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
	added := make([]*subscription, len(subs))
	for i, sub := range subs {
		added[i] = newSubscription(sub.filter, 1, &inlineSink{ctx: ctx, h: sub.handler, queues: queues})
		s.b.router.add(added[i])
	}
	defer func() {
		for _, sub := range added {
			s.b.router.remove(sub)
		}
	}()
	for _, sub := range added {
		s.b.router.sendRetained(sub, origin{done: ctx.Done()})
	}
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

// Publish hands one message to the broker, which retains it if asked and
// queues it for every subscriber before returning. A subscriber without
// room holds it back, until the subscriber drains or is disconnected
// (within the broker's write timeout) or ctx ends; then the error says
// that not every subscriber may have the message. The payload is copied.
func (s *InlineSession) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if !validTopic(topic) {
		return fmt.Errorf("publish: invalid topic %q", topic)
	}
	if qos > 2 {
		return errors.New("publish: QoS over 2")
	}
	s.b.router.publish(topic, append([]byte(nil), payload...), qos, retained, origin{done: ctx.Done()})
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish %s: not every subscriber may have it: %w", topic, err)
	}
	return nil
}
