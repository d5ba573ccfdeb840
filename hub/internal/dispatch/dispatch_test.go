package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

type message struct {
	topic    string
	retained bool
	sentAt   time.Time // the envelope's time
	snap     wire.Snapshot
}

type fakePublisher struct {
	mu    sync.Mutex
	msgs  []message
	fail  bool
	tries int
}

func (f *fakePublisher) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.fail {
		return errors.New("broker down")
	}
	env, err := wire.Decode(topic, payload)
	if err != nil {
		return err
	}
	var s wire.Snapshot
	if err := wire.DecodePayload(env, topic, &s); err != nil {
		return err
	}
	f.msgs = append(f.msgs, message{topic: topic, retained: retained, sentAt: env.Time, snap: s})
	return nil
}

func (f *fakePublisher) take() []message {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.msgs
	f.msgs = nil
	return m
}

func (f *fakePublisher) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

func (f *fakePublisher) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

func putPod(t *testing.T, st store.Store, name, node, image string, ready bool) {
	t.Helper()
	p := &api.Pod{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name},
		Spec:       api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "c", Image: image}}},
	}
	if ready {
		p.Status.Phase = api.PodRunning
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(p) }); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, st store.Store, pub Publisher) (*Dispatcher, func()) {
	d := New(Options{Store: st, Publisher: pub, Debounce: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	return d, func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRevisionsIncreaseOnlyOnChange(t *testing.T) {
	st := store.NewMemory()
	pub := &fakePublisher{}
	d, stop := start(t, st, pub)
	defer stop()

	putPod(t, st, "p1", "n1", "img:v1", false)
	waitFor(t, "revision 1", func() bool { return d.PublishedRevision("n1") == 1 })
	msgs := pub.take()
	if len(msgs) != 1 || msgs[0].topic != "flotilla/v1/nodes/n1/desired" || !msgs[0].retained {
		t.Fatalf("messages = %+v", msgs)
	}
	if s := msgs[0].snap; s.Node != "n1" || s.Revision != 1 || len(s.Pods) != 1 || s.Pods[0].SpecHash == "" {
		t.Fatalf("snapshot = %+v", s)
	}

	// A status change does not change the snapshot.
	putPod(t, st, "p1", "n1", "img:v1", true)
	putPod(t, st, "p2", "n2", "img:v1", false) // a change elsewhere, to know the pass ran
	waitFor(t, "n2", func() bool { return d.PublishedRevision("n2") == 1 })
	if d.PublishedRevision("n1") != 1 {
		t.Fatalf("status update bumped the revision")
	}
	pub.take()

	// A spec change does.
	putPod(t, st, "p1", "n1", "img:v2", true)
	waitFor(t, "revision 2", func() bool { return d.PublishedRevision("n1") == 2 })
	// Deleting the pod publishes an empty snapshot.
	if err := st.Update(func(tx store.Tx) error {
		return tx.Delete(store.Key{Kind: api.KindPod, Namespace: "default", Name: "p1"})
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision 3", func() bool { return d.PublishedRevision("n1") == 3 })
	var last wire.Snapshot
	for _, m := range pub.take() {
		if m.snap.Node == "n1" {
			last = m.snap
		}
	}
	if last.Revision != 3 || len(last.Pods) != 0 {
		t.Fatalf("last snapshot = %+v", last)
	}
	// Dispatch reads the store's shared objects and keeps parts of them:
	// it must not have changed any.
	if err := store.VerifyShared(st); err != nil {
		t.Fatal(err)
	}
}

func TestRevisionSurvivesRestartAndRepublish(t *testing.T) {
	st := store.NewMemory()
	pub := &fakePublisher{}
	d, stop := start(t, st, pub)
	putPod(t, st, "p1", "n1", "img:v1", false)
	waitFor(t, "revision 1", func() bool { return d.PublishedRevision("n1") == 1 })
	stop()
	pub.take()

	// A new hub process: nothing changed, so the same revision is
	// republished (the broker may have lost it), never a lower one.
	d2, stop2 := start(t, st, pub)
	defer stop2()
	d2.Republish()
	waitFor(t, "republish", func() bool { return d2.PublishedRevision("n1") == 1 })
	putPod(t, st, "p1", "n1", "img:v2", false)
	waitFor(t, "revision 2", func() bool { return d2.PublishedRevision("n1") == 2 })
}

func TestFailedPublishIsRetried(t *testing.T) {
	st := store.NewMemory()
	pub := &fakePublisher{fail: true}
	d, stop := start(t, st, pub)
	defer stop()
	putPod(t, st, "p1", "n1", "img:v1", false)
	time.Sleep(50 * time.Millisecond)
	if d.PublishedRevision("n1") != 0 {
		t.Fatalf("published while the broker was down")
	}
	pub.setFail(false)
	waitFor(t, "retry", func() bool { return d.PublishedRevision("n1") == 1 })
}

func TestAgentAheadOfHubGetsHigherRevision(t *testing.T) {
	// The hub's data was lost; the agent still holds revision 41.
	st := store.NewMemory()
	pub := &fakePublisher{}
	n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n1"}}
	n.Status.ObservedRevision = 41
	if err := st.Update(func(tx store.Tx) error { return tx.Put(n) }); err != nil {
		t.Fatal(err)
	}
	d, stop := start(t, st, pub)
	defer stop()
	waitFor(t, "revision 42", func() bool { return d.PublishedRevision("n1") == 42 })
}

// TestResendsToANodeThatDoesNotAcknowledge: a Ready node that has not
// acknowledged its snapshot within Resend of being sent it is sent it
// again (a message lost on the way is otherwise never resent), with the
// same revision; a node that acknowledged, or is not Ready, is not.
func TestResendsToANodeThatDoesNotAcknowledge(t *testing.T) {
	st := store.NewMemory()
	pub := &fakePublisher{}
	node := func(name string, ready bool, observed uint64) {
		t.Helper()
		n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name}}
		n.Status.Online = ready
		n.Status.ObservedRevision = observed
		if ready {
			n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		}
		if err := st.Update(func(tx store.Tx) error { return tx.Put(n) }); err != nil {
			t.Fatal(err)
		}
	}
	node("deaf", true, 0)
	node("offline", false, 0)
	node("fine", true, 0)
	d := New(Options{Store: st, Publisher: pub, Debounce: time.Millisecond, Resend: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for _, n := range []string{"deaf", "offline", "fine"} {
		putPod(t, st, "p-"+n, n, "img:v1", false)
	}
	waitFor(t, "first snapshots", func() bool {
		return d.PublishedRevision("deaf") == 1 && d.PublishedRevision("offline") == 1 && d.PublishedRevision("fine") == 1
	})
	node("fine", true, 1) // acknowledged
	pub.take()
	time.Sleep(1500 * time.Millisecond) // several Resend periods
	sent := map[string]int{}
	for _, m := range pub.take() {
		sent[m.snap.Node]++
		if m.snap.Revision != 1 {
			t.Fatalf("resent %s at revision %d, want 1", m.snap.Node, m.snap.Revision)
		}
	}
	if sent["deaf"] == 0 || sent["offline"] != 0 || sent["fine"] != 0 {
		t.Fatalf("sent again: %v; want deaf only", sent)
	}
	// Once it acknowledges, it is not sent again.
	node("deaf", true, 1)
	time.Sleep(300 * time.Millisecond)
	pub.take()
	time.Sleep(700 * time.Millisecond)
	if msgs := pub.take(); len(msgs) != 0 {
		t.Fatalf("%d snapshots sent after every node acknowledged", len(msgs))
	}
}

// The content hash is written from each pod's cached JSON; it must equal
// the hash of the marshalled content it stands for, which the NodeSnapshot
// records of earlier hubs hold, or an upgraded hub would give every node a
// new revision.
func TestContentHashIsTheHashOfTheContent(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("hub key")} {
		d := New(Options{HashKey: key})
		pods := []*api.Pod{
			{ObjectMeta: api.ObjectMeta{Name: "a", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "a"}},
				Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "c", Image: "img:v1",
					Env: []api.EnvVar{{Name: "DB", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: api.LocalObjectReference{Name: "db"}, Key: "pw"}}}}}}}},
			{ObjectMeta: api.ObjectMeta{Name: "b", Namespace: "default", UID: "u2"},
				Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "c", Image: "img:v2"}}}},
		}
		d.setConfigLocked(store.Key{Kind: api.KindSecret, Namespace: "default", Name: "db"},
			&api.Secret{ObjectMeta: api.ObjectMeta{Name: "db", Namespace: "default"}, Data: map[string][]byte{"pw": []byte("x")}}, nil)
		for _, p := range pods {
			d.setPod(store.KeyOf(&api.Pod{TypeMeta: api.TypeMeta{Kind: api.KindPod}, ObjectMeta: p.ObjectMeta}), p)
		}
		for _, node := range []string{"n1", "empty"} {
			b := d.buildLocked(d.node(node))
			want, err := json.Marshal(struct {
				Pods       []wire.SnapshotPod
				Secrets    []wire.SnapshotSecret    `json:",omitempty"`
				ConfigMaps []wire.SnapshotConfigMap `json:",omitempty"`
			}{b.snap.Pods, b.snap.Secrets, b.snap.ConfigMaps})
			if err != nil {
				t.Fatal(err)
			}
			var sum []byte
			if key != nil {
				m := hmac.New(sha256.New, key)
				m.Write(want)
				sum = m.Sum(nil)
			} else {
				s := sha256.Sum256(want)
				sum = s[:]
			}
			if got := b.hash; got != hex.EncodeToString(sum[:16]) {
				t.Fatalf("node %s, key %q: hash %s, want %s of %s", node, key, got, hex.EncodeToString(sum[:16]), want)
			}
			if node == "n1" && (len(b.snap.Pods) != 2 || len(b.snap.Secrets) != 1) {
				t.Fatalf("snapshot %+v", b.snap)
			}
		}
	}
}

// dispatcherGoroutines returns the stacks of the goroutines running a
// Dispatcher's code.
func dispatcherGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "dispatch.(*Dispatcher)") {
			found = append(found, g)
		}
	}
	return found
}

// TestRunJoinsWhatItStarts: when Run returns, nothing it started still
// runs, the wait before a failed publish is retried included, and whether
// Run ends by its context or by the store closing its watch.
func TestRunJoinsWhatItStarts(t *testing.T) {
	for _, end := range []string{"store closed", "context cancelled"} {
		t.Run(end, func(t *testing.T) {
			st := store.NewMemory()
			pub := &fakePublisher{fail: true}
			d := New(Options{Store: st, Publisher: pub, Debounce: time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			putPod(t, st, "p1", "n1", "img:v1", false)
			waitFor(t, "a failed publish", func() bool { return pub.attempts() > 0 })
			if end == "store closed" {
				_ = st.Close()
			} else {
				cancel()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			if gs := dispatcherGoroutines(); len(gs) > 0 {
				t.Fatalf("%d goroutines still run dispatch code after Run returned:\n%s", len(gs), strings.Join(gs, "\n\n"))
			}
		})
	}
}

// TestUsesItsClock: the records' publish time and the envelopes' time
// come from Options.Now, not the machine's clock.
func TestUsesItsClock(t *testing.T) {
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	st := store.NewMemory()
	pub := &fakePublisher{}
	d := New(Options{Store: st, Publisher: pub, Debounce: time.Millisecond, Now: func() time.Time { return at }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	putPod(t, st, "p1", "n1", "img:v1", false)
	waitFor(t, "revision 1", func() bool { return d.PublishedRevision("n1") == 1 })
	msgs := pub.take()
	if len(msgs) != 1 || !msgs[0].sentAt.Equal(at) {
		t.Fatalf("envelope time %v, want %v", msgs[0].sentAt, at)
	}
	var rec *desired.Record
	if err := st.View(func(tx store.Tx) error {
		var err error
		rec, err = store.Get[desired.Record](tx, "", "n1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !rec.Published.Equal(at) {
		t.Fatalf("record published at %v, want %v", rec.Published, at)
	}
}

// TestPodMovedToAnotherNode: a pod rebound to another node leaves its
// old node's snapshot (a new, empty revision) and joins the new one's.
func TestPodMovedToAnotherNode(t *testing.T) {
	st := store.NewMemory()
	pub := &fakePublisher{}
	d, stop := start(t, st, pub)
	defer stop()
	putPod(t, st, "p1", "n1", "img:v1", false)
	waitFor(t, "n1 revision 1", func() bool { return d.PublishedRevision("n1") == 1 })
	pub.take()
	putPod(t, st, "p1", "n2", "img:v1", false)
	waitFor(t, "n1 revision 2 and n2 revision 1", func() bool {
		return d.PublishedRevision("n1") == 2 && d.PublishedRevision("n2") == 1
	})
	got := map[string]int{}
	for _, m := range pub.take() {
		got[m.snap.Node] = len(m.snap.Pods)
	}
	if got["n1"] != 0 || got["n2"] != 1 {
		t.Fatalf("pods per snapshot after the move: %v, want n1: 0, n2: 1", got)
	}
}
