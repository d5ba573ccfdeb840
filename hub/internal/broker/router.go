package broker

// Routing: who receives a message, and the retained messages.
//
// Subscriptions without wildcards (every agent's: its own desired and
// requests topics) sit in a map by filter; those with wildcards (the
// hub's few) in a list that every publish walks. Members of a shared
// subscription ($share/{group}/{filter}) take the group's messages in
// turn. Locks are held only to look up, never while a message is handed
// over: an inline subscriber may block.

import (
	"slices"
	"sync"
	"sync/atomic"
)

// sink receives the messages of a subscription: a client connection or
// one of the hub's inline handlers. deliver may wait for room, until the
// origin gives up (outbound.go).
type sink interface {
	deliver(m message, o origin)
}

// subscription is one filter of one subscriber.
type subscription struct {
	filter string // as subscribed, with $share/{group}/ if shared
	topic  string // the filter without the share prefix
	group  string // "" unless shared
	qos    byte   // granted
	sink   sink
}

// newSubscription parses a valid filter.
func newSubscription(filter string, qos byte, s sink) *subscription {
	group, topic, _ := splitShared(filter)
	return &subscription{filter: filter, topic: topic, group: group, qos: qos, sink: s}
}

// filterSubs are the subscriptions to one (unshared) filter.
type filterSubs struct {
	filter string
	plain  []*subscription
	groups []*shareGroup
}

func (f *filterSubs) empty() bool { return len(f.plain) == 0 && len(f.groups) == 0 }

// shareGroup is a shared subscription's members; each message goes to
// the next one.
type shareGroup struct {
	name    string
	members []*subscription
	next    atomic.Uint32
}

// target is one delivery of a message.
type target struct {
	sink sink
	qos  byte
}

// retainedMsg is the retained message of a topic.
type retainedMsg struct {
	payload []byte
	qos     byte
}

// router holds the subscriptions and retained messages.
type router struct {
	mu    sync.RWMutex
	exact map[string]*filterSubs
	wild  []*filterSubs

	retainMu sync.RWMutex
	retained map[string]retainedMsg
}

func newRouter() *router {
	return &router{exact: map[string]*filterSubs{}, retained: map[string]retainedMsg{}}
}

// add adds a subscription.
func (r *router) add(s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.find(s.topic)
	if f == nil {
		f = &filterSubs{filter: s.topic}
		if wild(s.topic) {
			r.wild = append(r.wild, f)
		} else {
			r.exact[s.topic] = f
		}
	}
	if s.group == "" {
		f.plain = append(f.plain, s)
		return
	}
	i := slices.IndexFunc(f.groups, func(g *shareGroup) bool { return g.name == s.group })
	if i < 0 {
		f.groups = append(f.groups, &shareGroup{name: s.group})
		i = len(f.groups) - 1
	}
	f.groups[i].members = append(f.groups[i].members, s)
}

// setQoS changes the granted QoS of a subscription already added.
func (r *router) setQoS(s *subscription, qos byte) {
	r.mu.Lock()
	s.qos = qos
	r.mu.Unlock()
}

// remove removes a subscription.
func (r *router) remove(s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.find(s.topic)
	if f == nil {
		return
	}
	if s.group == "" {
		f.plain = deleteSub(f.plain, s)
	} else if i := slices.IndexFunc(f.groups, func(g *shareGroup) bool { return g.name == s.group }); i >= 0 {
		g := f.groups[i]
		if g.members = deleteSub(g.members, s); len(g.members) == 0 {
			f.groups = slices.Delete(f.groups, i, i+1)
		}
	}
	if !f.empty() {
		return
	}
	if wild(f.filter) {
		r.wild = slices.DeleteFunc(r.wild, func(w *filterSubs) bool { return w == f })
	} else {
		delete(r.exact, f.filter)
	}
}

func deleteSub(subs []*subscription, s *subscription) []*subscription {
	if subs = slices.DeleteFunc(subs, func(x *subscription) bool { return x == s }); len(subs) == 0 {
		return nil
	}
	return subs
}

// find returns the subscriptions to filter; r.mu is held.
func (r *router) find(filter string) *filterSubs {
	if !wild(filter) {
		return r.exact[filter]
	}
	for _, f := range r.wild {
		if f.filter == filter {
			return f
		}
	}
	return nil
}

// targets appends the deliveries of a message on topic to dst.
func (r *router) targets(topic string, dst []target) []target {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if f := r.exact[topic]; f != nil {
		dst = f.appendTargets(dst)
	}
	for _, f := range r.wild {
		if match(f.filter, topic) {
			dst = f.appendTargets(dst)
		}
	}
	return dst
}

func (f *filterSubs) appendTargets(dst []target) []target {
	for _, s := range f.plain {
		dst = append(dst, target{sink: s.sink, qos: s.qos})
	}
	for _, g := range f.groups {
		s := g.members[int(g.next.Add(1)-1)%len(g.members)]
		dst = append(dst, target{sink: s.sink, qos: s.qos})
	}
	return dst
}

// publish retains a message if asked (an empty payload deletes the
// topic's retained message), then hands it to every subscriber,
// returning once each has it (or the origin gave up waiting).
func (r *router) publish(topic string, payload []byte, qos byte, retain bool, o origin) {
	if retain {
		r.retainMu.Lock()
		if len(payload) == 0 {
			delete(r.retained, topic)
		} else {
			r.retained[topic] = retainedMsg{payload: payload, qos: qos}
		}
		r.retainMu.Unlock()
	}
	var buf [16]target
	for _, t := range r.targets(topic, buf[:0]) {
		t.sink.deliver(message{topic: topic, payload: payload, qos: min(qos, t.qos)}, o)
	}
}

// sendRetained hands a new subscription the retained messages its filter
// matches; shared subscriptions get none.
func (r *router) sendRetained(s *subscription, o origin) {
	if s.group != "" {
		return
	}
	type msg struct {
		topic string
		retainedMsg
	}
	var msgs []msg
	r.retainMu.RLock()
	if !wild(s.topic) {
		if m, ok := r.retained[s.topic]; ok {
			msgs = append(msgs, msg{s.topic, m})
		}
	} else {
		for topic, m := range r.retained {
			if match(s.topic, topic) {
				msgs = append(msgs, msg{topic, m})
			}
		}
	}
	r.retainMu.RUnlock()
	for _, m := range msgs {
		s.sink.deliver(message{topic: m.topic, payload: m.payload, qos: min(m.qos, s.qos), retained: true}, o)
	}
}
