package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// notFound is the error a runtime returns when the registry has no such
// tag; unreachable when it cannot reach the registry.
func notFound(ref string) error {
	return fmt.Errorf("pull %s: %w: %w", ref, ErrImagePull, fmt.Errorf("%w: %s: not found", ErrImageNotFound, ref))
}

func unreachable(ref string) error {
	return fmt.Errorf("pull %s: %w: %w", ref, ErrImagePull, fmt.Errorf("%w: dial tcp: connection refused", ErrRegistryUnavailable))
}

// syncs runs n passes at the same instant, as the events that wake the
// loop (task exits, snapshots, workers ending) would.
func (h *harness) syncs(n int) {
	for range n {
		h.sync()
	}
}

// countReasons counts the events of each reason since the last call.
func (h *harness) countReasons() map[string]int {
	n := map[string]int{}
	for _, r := range h.eventReasons() {
		n[r]++
	}
	return n
}

func podReport(t *testing.T, h *harness, name string) wire.PodReport {
	t.Helper()
	for _, p := range h.reports[len(h.reports)-1].Pods {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("pod %s not in the last report", name)
	return wire.PodReport{}
}

// checkBackingOff checks the pod's status while its container's image
// backs off: ImagePullBackOff with the registry's error, and the pull
// failure for the rollout.
func checkBackingOff(t *testing.T, st api.PodStatus, image, specHash string, permanent bool, attempts int32) {
	t.Helper()
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != reasonImagePullBack || !strings.Contains(w.Message, `Back-off pulling image "`+image+`"`) ||
		!strings.Contains(w.Message, image+": ") {
		t.Fatalf("container state = %+v, want ImagePullBackOff with the registry's error", st.ContainerStatuses[0].State)
	}
	f := st.PullFailure
	if f == nil {
		t.Fatalf("no pull failure in the status: %+v", st)
	}
	if f.Image != image || f.SpecHash != specHash || f.Permanent != permanent || f.PrePull || f.Attempts != attempts || f.Since.IsZero() ||
		!strings.Contains(f.Message, image) {
		t.Fatalf("pull failure = %+v; want image %s, spec %s, permanent %v, %d attempts", f, image, specHash, permanent, attempts)
	}
}

// TestReplacementBacksOffAFailingPull is the hot loop of issue 13: a
// running pod given a spec whose image does not exist must pull it once
// per back-off step, not on every pass, and say why it waits.
func TestReplacementBacksOffAFailingPull(t *testing.T) {
	h := newHarness(t)
	old := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{old}})
	h.sync()
	h.rt.takeCalls()
	h.eventReasons()

	const missing = "reg/web:does-not-exist"
	h.rt.pullErr[missing] = notFound(missing)
	bad := pod("web", missing, api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{bad}})
	h.syncs(10)
	if n := h.rt.pulls(missing); n != 1 {
		t.Fatalf("%d pulls in 10 passes at one instant, want 1", n)
	}
	if c, ok := h.rt.get(ContainerID(&old, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("the old container stopped: %+v", c)
	}
	checkBackingOff(t, h.lastStatus("web"), missing, bad.SpecHash, true, 1)
	if n := h.countReasons(); n["Failed"] != 1 || n["BackOff"] != 1 {
		t.Fatalf("events = %v, want one Failed and one BackOff", n)
	}

	// A new snapshot with the same image (a rollout re-annotating the
	// pod, or another spec change) keeps the back-off.
	again := bad
	again.Spec.Containers = []api.Container{bad.Spec.Containers[0]}
	again.Spec.Containers[0].Args = []string{"--again"}
	again.SpecHash = api.HashPodSpec(&again.Spec)
	h.desired.set(wire.Snapshot{Revision: 3, Pods: []wire.SnapshotPod{again}})
	h.syncs(5)
	if n := h.rt.pulls(missing); n != 0 {
		t.Fatalf("a new spec with the same image pulled it %d times inside the back-off", n)
	}
	if f := h.lastStatus("web").PullFailure; f == nil || f.SpecHash != again.SpecHash || f.Attempts != 1 {
		t.Fatalf("pull failure = %+v, want the new spec's, still 1 attempt", f)
	}
	if n := h.countReasons(); n["Failed"] != 0 || n["BackOff"] != 1 {
		t.Fatalf("events for the new spec = %v, want its one BackOff", n)
	}

	// The second step: one attempt after 10 s, then nothing for 15-20 s.
	h.clock.Advance(backoffInitial)
	h.syncs(5)
	if n := h.rt.pulls(missing); n != 1 {
		t.Fatalf("%d pulls once the first back-off passed, want 1", n)
	}
	checkBackingOff(t, h.lastStatus("web"), missing, again.SpecHash, true, 2)
	if n := h.countReasons(); n["Failed"] != 1 || n["BackOff"] != 1 {
		t.Fatalf("second step events = %v, want one Failed and one BackOff", n)
	}
	h.clock.Advance(backoffInitial * 3 / 2)
	h.syncs(5)
	if n := h.rt.pulls(missing); n != 0 {
		t.Fatalf("pulled %d times inside the second (15-20 s) back-off", n)
	}

	// The tag is pushed: the next attempt pulls it and the pod moves over.
	delete(h.rt.pullErr, missing)
	h.clock.Advance(backoffInitial)
	h.syncs(2)
	if c, ok := h.rt.get(ContainerID(&again, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("the new spec is not running once its image could be pulled: %+v", c)
	}
	if st := h.lastStatus("web"); st.PullFailure != nil || st.ContainerStatuses[0].State.Running == nil {
		t.Fatalf("status after the pull = %+v", st)
	}
}

// TestFirstStartPullBackOffIsPerImage: two pods with one bad image share
// one back-off; a pod that comes later waits for it too.
func TestFirstStartPullBackOffIsPerImage(t *testing.T) {
	h := newHarness(t)
	const img = "reg/app:v1"
	h.rt.pullErr[img] = unreachable(img)
	a, b := pod("a", img, api.RestartAlways), pod("b", img, api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{a}})
	h.syncs(5)
	if n := h.rt.pulls(img); n != 1 {
		t.Fatalf("%d pulls in 5 passes, want 1", n)
	}
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{a, b}})
	h.syncs(5)
	if n := h.rt.pulls(img); n != 0 {
		t.Fatalf("a second pod pulled the backing-off image %d times", n)
	}
	for _, p := range []wire.SnapshotPod{a, b} {
		st := podReport(t, h, p.Name).Status
		checkBackingOff(t, st, img, p.SpecHash, false, 1)
		if st.Phase != api.PodPending {
			t.Fatalf("pod %s phase %s", p.Name, st.Phase)
		}
	}
	if n := h.countReasons(); n["Failed"] != 1 || n["BackOff"] != 2 {
		t.Fatalf("events = %v, want one Failed (the attempt) and a BackOff per pod", n)
	}

	// Both retry together after the wait; their failures, at one
	// instant, are one step, not two.
	h.clock.Advance(backoffInitial)
	h.syncs(3)
	if n := h.rt.pulls(img); n < 1 || n > 2 {
		t.Fatalf("%d pulls after the wait, want one per pod at most", n)
	}
	for _, p := range []wire.SnapshotPod{a, b} {
		checkBackingOff(t, podReport(t, h, p.Name).Status, img, p.SpecHash, false, 2)
	}
	if n := h.countReasons(); n["Failed"] != 1 {
		t.Fatalf("events = %v, want one Failed per step", n)
	}
}

// TestPrePullBacksOffAndReportsTheFailure: a pre-pull that fails is
// reported on the running pod, and the rollout that follows with the same
// image waits for the same back-off.
func TestPrePullBacksOffAndReportsTheFailure(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.takeCalls()
	h.eventReasons()

	const missing = "reg/web:v2-typo"
	h.rt.pullErr[missing] = notFound(missing)
	staged := p
	staged.PrePull = []string{missing}
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{staged}})
	h.syncs(10)
	if n := h.rt.pulls(missing); n != 1 {
		t.Fatalf("%d pre-pulls in 10 passes, want 1", n)
	}
	rep := podReport(t, h, "web")
	f := rep.Status.PullFailure
	if rep.PrePulled || rep.Status.Phase != api.PodRunning || f == nil || !f.PrePull || !f.Permanent || f.Image != missing ||
		f.SpecHash != p.SpecHash || f.Attempts != 1 || !strings.Contains(f.Message, "not found") {
		t.Fatalf("report = %+v, pull failure %+v", rep, f)
	}
	if n := h.countReasons(); n["Failed"] != 1 || n["BackOff"] != 1 {
		t.Fatalf("events = %v, want one Failed and one BackOff", n)
	}

	// The rollout reaches the node with that image: it waits too.
	next := pod("web", missing, api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 3, Pods: []wire.SnapshotPod{next}})
	h.syncs(5)
	if n := h.rt.pulls(missing); n != 0 {
		t.Fatalf("the replacement pulled %d times inside the pre-pull's back-off", n)
	}
	checkBackingOff(t, h.lastStatus("web"), missing, next.SpecHash, true, 1)
}

// TestRevertBacksOffAFailingPull: the agent's own revert to the last
// good spec, whose image has gone from the board and the registry, backs
// off like any replacement.
func TestRevertBacksOffAFailingPull(t *testing.T) {
	h := newHarness(t)
	rb := newMemRollbacks()
	h.rec.cfg.Rollbacks = rb
	good := withDeadline(pod("web", "reg/web:v1", api.RestartAlways), 600)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{good}})
	h.sync()
	h.clock.Advance(goodAfter + time.Second)
	h.sync()
	bad := withDeadline(pod("web", "reg/web:v2", api.RestartAlways), 600)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{bad}})
	h.sync()
	h.rt.pullErr["reg/web:v1"] = notFound("reg/web:v1")
	for i := 0; i < crashLoopRestarts+2 && h.rt.current(&bad, "main") != ""; i++ {
		if c, _ := h.rt.get(h.rt.current(&bad, "main")); c.State == TaskRunning {
			h.rt.exit(c.ID, 1)
		}
		h.clock.Advance(5 * time.Minute)
		h.sync()
	}
	h.rt.takeCalls()
	h.syncs(10)
	if n := h.rt.pulls("reg/web:v1"); n > 1 {
		t.Fatalf("the revert pulled the good spec's image %d times in 10 passes at one instant", n)
	}
	rep := podReport(t, h, "web")
	if rep.Reverted == nil || rep.SpecHash != good.SpecHash {
		t.Fatalf("not reverted: %+v", rep)
	}
	checkBackingOff(t, rep.Status, "reg/web:v1", good.SpecHash, true, rep.Status.PullFailure.Attempts)
}

// TestNeverPullDoesNotAskTheRegistry: policy Never with the image absent
// only looks on the board, backs off per container, and is no pull
// failure.
func TestNeverPullDoesNotAskTheRegistry(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/local:v1", api.RestartAlways)
	p.Spec.Containers[0].ImagePullPolicy = api.PullNever
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.syncs(5)
	if calls := h.rt.takeCalls(); !slices.Equal(calls, []string{"check reg/local:v1"}) {
		t.Fatalf("calls = %v", calls)
	}
	st := h.lastStatus("web")
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != reasonErrNeverPull || st.PullFailure != nil {
		t.Fatalf("status = %+v", st)
	}
}

// TestAlwaysPullFailureLeavesAPresentImageUsable: only pulls by policy
// Always failed, so a pod that takes the image if present starts from
// the board without waiting; one that needs it pulled waits.
func TestAlwaysPullFailureLeavesAPresentImageUsable(t *testing.T) {
	h := newHarness(t)
	const img = "reg/app:v1"
	h.rt.images[img] = true
	h.rt.pullErr[img] = unreachable(img)
	always := pod("always", img, api.RestartAlways)
	always.Spec.Containers[0].ImagePullPolicy = api.PullAlways
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{always}})
	h.syncs(3)
	if n := h.rt.pulls(img); n != 1 {
		t.Fatalf("%d pulls, want 1", n)
	}
	local := pod("local", img, api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{always, local}})
	h.syncs(3)
	if calls := h.rt.takeCalls(); !slices.Contains(calls, "check "+img) || slices.Contains(calls, "pull "+img) {
		t.Fatalf("calls = %v, want a look on the board and no pull", calls)
	}
	if c, ok := h.rt.get(ContainerID(&local, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("the IfNotPresent pod did not start from the board: %+v", c)
	}
	checkBackingOff(t, podReport(t, h, "always").Status, img, always.SpecHash, false, 1)
}

func TestPullBackoffSteps(t *testing.T) {
	b := newPullBackoff()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := notFound("x")
	start := now
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, d := range want {
		f, stepped := b.failed("x", api.PullIfNotPresent, err, now)
		if !stepped || f.Attempts != int32(i+1) || !f.Permanent || !f.Since.Equal(start) {
			t.Fatalf("step %d: %+v stepped %v", i+1, f, stepped)
		}
		if wait := f.Next.Sub(now); wait > d || wait < d*3/4 {
			t.Fatalf("step %d waits %s, want %s less at most a quarter", i+1, wait, d)
		}
		// A failure inside the wait (a pull that began before it) is the
		// same step.
		if g, stepped := b.failed("x", api.PullIfNotPresent, err, now.Add(time.Second)); stepped || g.Attempts != f.Attempts || !g.Next.Equal(f.Next) {
			t.Fatalf("a failure inside the wait stepped: %+v", g)
		}
		if _, held := b.holding("x", api.PullIfNotPresent, f.Next.Add(-time.Nanosecond)); !held {
			t.Fatal("not held inside the wait")
		}
		if _, held := b.holding("x", api.PullIfNotPresent, f.Next); held {
			t.Fatal("held after the wait")
		}
		now = f.Next
	}
	// Ten quiet minutes start it over; so does a pull.
	f, _ := b.failed("x", api.PullIfNotPresent, err, now.Add(pullBackoffReset+time.Second))
	if f.Attempts != 1 {
		t.Fatalf("after ten quiet minutes: %+v", f)
	}
	b.pulled("x")
	if _, ok := b.get("x"); ok {
		t.Fatal("a pulled image kept its back-off")
	}
	b.failed("y", api.PullIfNotPresent, errors.New("boom"), now)
	b.gc(now.Add(pullBackoffReset + time.Minute))
	if _, ok := b.get("y"); ok {
		t.Fatal("gc kept an image quiet for ten minutes")
	}
}

// TestPullBackoffSpreadsAFleet: nodes that failed at one instant retry
// at different instants.
func TestPullBackoffSpreadsAFleet(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seen := map[time.Time]bool{}
	for range 100 {
		f, _ := newPullBackoff().failed("x", api.PullIfNotPresent, errors.New("boom"), now)
		seen[f.Next] = true
	}
	if len(seen) < 50 {
		t.Fatalf("100 nodes retry at %d distinct instants", len(seen))
	}
}

// TestRunDoesNotHotLoopOnAFailingReplacement drives the loop itself, as
// the agent does: the worker that fails the pull wakes the loop when it
// ends, and that pass must not start another pull. The clock stands
// still, so the back-off never ends during the test.
func TestRunDoesNotHotLoopOnAFailingReplacement(t *testing.T) {
	h := newHarness(t)
	old := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{old}})
	h.sync()
	const missing = "reg/web:does-not-exist"
	h.rt.pullErr[missing] = notFound(missing)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{pod("web", missing, api.RestartAlways)}})
	h.rt.takeCalls()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.rec.Run(ctx) }()
	pulls := 0
	waitFor(t, func() bool { pulls += h.rt.pulls(missing); return pulls > 0 })
	// Wake it as new snapshots and task exits would.
	for range 50 {
		h.rec.Wake()
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pulls += h.rt.pulls(missing); pulls != 1 {
		t.Fatalf("%d pulls while the back-off lasted, want 1", pulls)
	}
}
