// Command statesoak plays a week of an agent's life against its local
// store, as fast as the store allows: desired snapshots, restart records of
// crash-looping containers, report sequence numbers, and the outbox's
// status reports, events and metric samples, with a stretch offline while
// the outbox fills and then drains. At the end of every simulated day it
// closes and reopens the store and reads everything back; all along it
// samples the process's mapped address space from /proc/self/maps.
//
// test/arm builds it for GOARCH=arm and runs it under qemu-arm-static, to
// show that Badger, as package state sets it up, stays within a 32-bit
// board's address space. It prints one JSON line per day and a summary
// line, and exits non-zero when anything read back differs.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/state"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Day is what one simulated day did and what the process looked like.
type Day struct {
	Day        int     `json:"day"`
	Offline    bool    `json:"offline"`
	Snapshots  int     `json:"snapshots"`
	Restarts   int     `json:"restartRecords"`
	Appended   int     `json:"outboxAppended"`
	Acked      int     `json:"outboxAcked"`
	Queued     int     `json:"outboxQueued"`
	Dropped    uint64  `json:"outboxDropped"`
	QueuedKiB  int64   `json:"outboxQueuedKiB"`
	Seq        uint64  `json:"seq"`
	Mapped     Mapping `json:"mappedAtEndOfDay"`
	Reopened   Mapping `json:"mappedAfterReopen"`
	DiskKiB    int64   `json:"diskKiB"`
	HeapSysMiB float64 `json:"heapSysMiB"`
	// HeapLiveMiB is the heap in use right after a collection.
	HeapLiveMiB float64 `json:"heapLiveMiB"`
	// PeakRSSMiB is VmHWM from /proc/self/status: the process's peak
	// resident memory so far (under qemu-user, the emulator's, an upper
	// bound of the guest's).
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	Seconds    float64 `json:"seconds"`
}

// Summary closes the run.
type Summary struct {
	Summary      bool    `json:"summary"`
	GOARCH       string  `json:"goarch"`
	Days         int     `json:"days"`
	Writes       int     `json:"writes"`
	Peak         Mapping `json:"peak"`
	First        Mapping `json:"firstDay"`
	Last         Mapping `json:"lastDay"`
	DiskKiB      int64   `json:"diskKiB"`
	Seconds      float64 `json:"seconds"`
	Samples      int     `json:"samples"`
	MaxStoreMaps int     `json:"maxStoreMaps"`
	PeakRSSMiB   float64 `json:"peakRSSMiB"`
}

// Mapping is a reading of /proc/self/maps.
type Mapping struct {
	// TotalMiB is every mapping, reservations included: the address
	// space the process uses.
	TotalMiB float64 `json:"totalMiB"`
	// StoreMiB is the mappings of files in the store's directory
	// (Badger's memtables, tables and value logs).
	StoreMiB float64 `json:"storeMiB"`
	// StoreMaps is how many such mappings there are.
	StoreMaps int `json:"storeMaps"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "statesoak:", err)
		os.Exit(1)
	}
}

type params struct {
	dir             string
	days            int
	pods            int
	snapshotEvery   int // simulated minutes
	crashLoopers    int
	restartEvery    int // simulated minutes
	offlineFrom     int // first offline day (1-based), 0 for never
	offlineDays     int
	metricBytes     int
	metricsPerMin   int
	gcEvery         time.Duration
	sampleEvery     time.Duration
	heartbeatPerMin int
	heapProfile     string
}

func run() error {
	var p params
	flag.StringVar(&p.dir, "dir", "", "directory for the store (required; must not exist or be empty)")
	flag.IntVar(&p.days, "days", 7, "simulated days")
	flag.IntVar(&p.pods, "pods", 5, "pods per snapshot")
	flag.IntVar(&p.snapshotEvery, "snapshot-every", 10, "simulated minutes between desired snapshots")
	flag.IntVar(&p.crashLoopers, "crash-loopers", 3, "containers that crash and restart all week")
	flag.IntVar(&p.restartEvery, "restart-every", 5, "simulated minutes between restarts of each crash-looper (the back-off cap)")
	flag.IntVar(&p.offlineFrom, "offline-from", 3, "first day the hub is unreachable (0: never)")
	flag.IntVar(&p.offlineDays, "offline-days", 2, "days the hub stays unreachable")
	flag.IntVar(&p.metricBytes, "metric-bytes", 600, "bytes of one metric sample")
	flag.IntVar(&p.metricsPerMin, "metrics-per-minute", 1, "metric samples per simulated minute")
	flag.DurationVar(&p.gcEvery, "gc-every", 200*time.Millisecond, "real time between value-log GC runs (the agent runs one every 10 minutes)")
	flag.DurationVar(&p.sampleEvery, "sample-every", 50*time.Millisecond, "real time between /proc/self/maps samples")
	flag.IntVar(&p.heartbeatPerMin, "heartbeats-per-minute", 6, "sequence numbers taken per simulated minute by heartbeats")
	flag.StringVar(&p.heapProfile, "heap-profile", "", "write a heap profile to PREFIX.dayN at the end of each day")
	flag.Parse()
	if p.dir == "" {
		return errors.New("-dir is required")
	}
	dir, err := filepath.Abs(p.dir)
	if err != nil {
		return err
	}
	p.dir = dir
	return soak(p)
}

// expected is what the store must hold, tracked beside it.
type expected struct {
	snapshot wire.Snapshot
	restarts map[string]reconcile.RestartRecord
	queued   []uint64 // appended, not yet acked nor dropped, in order
	dropped  uint64   // the outbox's drop count when queued was last synced
	seq      uint64
}

// syncQueue checks the outbox against what was appended: the entries it
// holds are, in order, those appended and not acked, less the ones it
// dropped (and counted) when full. It then takes the outbox's view.
func syncQueue(st *state.Store, ob *outbox.Outbox, exp *expected) error {
	held, err := queuedSeqs(st)
	if err != nil {
		return err
	}
	dropped := ob.Dropped() - exp.dropped
	if uint64(len(exp.queued)-len(held)) != dropped {
		return fmt.Errorf("outbox holds %d entries; %d were queued and it counts %d dropped", len(held), len(exp.queued), dropped)
	}
	j := 0
	for _, seq := range held {
		for j < len(exp.queued) && exp.queued[j] < seq {
			j++
		}
		if j == len(exp.queued) || exp.queued[j] != seq {
			return fmt.Errorf("outbox holds seq %d, which was not queued (or not in order)", seq)
		}
		j++
	}
	if n, _ := ob.Len(); n != len(held) {
		return fmt.Errorf("outbox counts %d entries, holds %d", n, len(held))
	}
	// The oldest entries, with their payloads, come back through the
	// outbox's own reader.
	if len(held) > 0 {
		first, err := ob.Peek(16)
		if err != nil {
			return err
		}
		for i, e := range first {
			if e.Seq != held[i] || len(e.Payload) == 0 || e.Topic == "" {
				return fmt.Errorf("outbox entry %d: seq %d topic %q, %d bytes; want seq %d", i, e.Seq, e.Topic, len(e.Payload), held[i])
			}
		}
	}
	exp.queued = held
	exp.dropped = ob.Dropped()
	return nil
}

// queuedSeqs lists the outbox's sequence numbers from its keys alone
// ("q/" and 8 bytes big-endian, see package outbox), without loading the
// payloads, which can be 64 MiB.
func queuedSeqs(st *state.Store) ([]uint64, error) {
	var out []uint64
	err := st.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte("q/")
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) == 10 {
				out = append(out, binary.BigEndian.Uint64(k[2:]))
			}
		}
		return nil
	})
	return out, err
}

// soakRun is one soak under way: the store (reopened every day), what it
// must hold, and the simulated clock.
type soakRun struct {
	p          params
	dir        string
	st         *state.Store
	ob         *outbox.Outbox
	stopGC     func()
	exp        expected
	clock      time.Time
	generation int
}

func soak(p params) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	storeDir := filepath.Join(p.dir, "state")
	sampler := newSampler(storeDir)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); sampler.run(ctx, p.sampleEvery) }()

	start := time.Now()
	s := &soakRun{p: p, dir: storeDir, exp: expected{restarts: map[string]reconcile.RestartRecord{}},
		clock: time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)}
	var err error
	if s.st, s.ob, s.stopGC, err = open(ctx, storeDir, p.gcEvery); err != nil {
		return err
	}
	defer func() { s.stopGC(); s.st.Close() }()

	sum := Summary{Summary: true, GOARCH: goruntime.GOARCH, Days: p.days}
	for day := 1; day <= p.days; day++ {
		dayStart := time.Now()
		offline := p.offlineFrom > 0 && day >= p.offlineFrom && day < p.offlineFrom+p.offlineDays
		d := Day{Day: day, Offline: offline}
		for minute := 0; minute < 24*60; minute++ {
			if err := s.minute(minute, offline, &d); err != nil {
				return fmt.Errorf("day %d: %w", day, err)
			}
		}
		if err := s.endOfDay(ctx, &d, sampler); err != nil {
			return fmt.Errorf("day %d: %w", day, err)
		}
		sum.Writes += d.Snapshots*2 + d.Restarts + d.Appended + d.Acked
		d.Seconds = time.Since(dayStart).Seconds()
		if day == 1 {
			sum.First = d.Mapped
		}
		sum.Last = d.Mapped
		if err := json.NewEncoder(os.Stdout).Encode(d); err != nil {
			return err
		}
	}
	cancel()
	wg.Wait()
	sum.Peak, sum.Samples, sum.MaxStoreMaps = sampler.peak()
	sum.DiskKiB = diskUsage(storeDir) >> 10
	sum.PeakRSSMiB = peakRSS()
	sum.Seconds = time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(sum)
}

// minute plays one minute of the agent's life: heartbeats, metric
// samples, a snapshot (with its status report and event) and restarts when
// they are due, and the drain while online.
func (s *soakRun) minute(minute int, offline bool, d *Day) error {
	s.clock = s.clock.Add(time.Minute)
	for range s.p.heartbeatPerMin {
		seq, err := s.st.NextSeq()
		if err != nil {
			return err
		}
		s.exp.seq = seq
	}
	var appended []uint64
	for range s.p.metricsPerMin {
		if err := s.append(d, &appended, outbox.Telemetry, wire.TopicMetrics, metricSample(s.clock, s.p.metricBytes)); err != nil {
			return fmt.Errorf("metric: %w", err)
		}
	}
	if minute%s.p.snapshotEvery == 0 {
		if err := s.newSnapshot(d, &appended); err != nil {
			return err
		}
	}
	if minute%s.p.restartEvery == 0 {
		if err := s.crashLoop(d); err != nil {
			return err
		}
	}
	s.exp.queued = append(s.exp.queued, appended...)
	if !offline && len(s.exp.queued) > 0 {
		return s.drain(d)
	}
	return nil
}

// append queues one report in the outbox.
func (s *soakRun) append(d *Day, appended *[]uint64, class outbox.Class, topic string, payload []byte) error {
	seq, err := s.st.NextSeq()
	if err != nil {
		return err
	}
	s.exp.seq = seq
	if err := s.ob.Append(outbox.Entry{Seq: seq, Class: class, Topic: topic, Payload: payload}); err != nil {
		return err
	}
	*appended = append(*appended, seq)
	d.Appended++
	return nil
}

// newSnapshot accepts the next desired snapshot, whose new generation
// replaces the crash-loopers' containers, and queues its status report
// and an event.
func (s *soakRun) newSnapshot(d *Day, appended *[]uint64) error {
	s.generation++
	snap := snapshot(s.exp.snapshot.Revision+1, s.p.pods, s.generation)
	ok, err := s.st.AcceptSnapshot(snap)
	if err != nil || !ok {
		return fmt.Errorf("accept snapshot %d: %v %w", snap.Revision, ok, err)
	}
	s.exp.snapshot = snap
	d.Snapshots++
	// The new generation replaces the crash-loopers' containers: their
	// records go, new ones start.
	for id := range s.exp.restarts {
		if err := s.st.DeleteRestarts(id); err != nil {
			return err
		}
		delete(s.exp.restarts, id)
	}
	if err := s.append(d, appended, outbox.Status, wire.TopicStatus, statusReport(snap, s.clock)); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if err := s.append(d, appended, outbox.Event, wire.TopicEvents, event(s.clock, s.generation)); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// crashLoop records one more restart of each crash-looping container.
func (s *soakRun) crashLoop(d *Day) error {
	for i := range s.p.crashLoopers {
		id := fmt.Sprintf("default_crasher-%d_main_%06d", i, s.generation)
		rec := s.exp.restarts[id]
		rec.Restarts++
		rec.Backoffs++
		rec.NextRestart = s.clock.Add(5 * time.Minute)
		rec.Last = &reconcile.Termination{ExitCode: 1, StartedAt: s.clock.Add(-time.Minute), FinishedAt: s.clock}
		if err := s.st.SaveRestarts(id, rec); err != nil {
			return err
		}
		s.exp.restarts[id] = rec
		d.Restarts++
	}
	return nil
}

// drain delivers the outbox, oldest first, as the agent does while the
// link is up.
func (s *soakRun) drain(d *Day) error {
	if err := syncQueue(s.st, s.ob, &s.exp); err != nil {
		return err
	}
	for len(s.exp.queued) > 0 {
		batch, err := s.ob.Peek(256)
		if err != nil {
			return err
		}
		seqs := make([]uint64, len(batch))
		for i, e := range batch {
			seqs[i] = e.Seq
		}
		if !slices.Equal(seqs, s.exp.queued[:len(seqs)]) {
			return fmt.Errorf("outbox order: peeked %v, want %v", seqs[:min(5, len(seqs))], s.exp.queued[:min(5, len(s.exp.queued))])
		}
		if err := s.ob.Ack(seqs...); err != nil {
			return err
		}
		s.exp.queued = s.exp.queued[len(seqs):]
		d.Acked += len(seqs)
	}
	return nil
}

// endOfDay takes the day's figures, then restarts the agent: closes the
// store, reopens it and reads everything back.
func (s *soakRun) endOfDay(ctx context.Context, d *Day, sampler *sampler) error {
	d.Queued, d.QueuedKiB = s.ob.Len()
	d.Dropped = s.ob.Dropped()
	d.QueuedKiB >>= 10
	d.Seq = s.exp.seq
	d.Mapped = sampler.now()
	var ms goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&ms)
	d.HeapSysMiB = mib(ms.HeapSys)
	d.HeapLiveMiB = mib(ms.HeapInuse)
	d.PeakRSSMiB = peakRSS()
	if s.p.heapProfile != "" {
		if err := writeHeapProfile(fmt.Sprintf("%s.day%d", s.p.heapProfile, d.Day)); err != nil {
			return err
		}
	}
	s.stopGC()
	if err := s.st.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	var err error
	if s.st, s.ob, s.stopGC, err = open(ctx, s.dir, s.p.gcEvery); err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	if err := verify(s.st, s.ob, &s.exp); err != nil {
		return fmt.Errorf("after reopen: %w", err)
	}
	d.Reopened = sampler.now()
	d.DiskKiB = diskUsage(s.dir) >> 10
	return nil
}

// open opens the store and the outbox as the agent does, and runs the
// value-log GC in the background until the returned stop is called.
func open(ctx context.Context, dir string, gcEvery time.Duration) (*state.Store, *outbox.Outbox, func(), error) {
	st, err := state.Open(dir, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	ob, err := outbox.Open(st, outbox.DefaultLimits)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); st.Run(gctx, 5*time.Second, gcEvery) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	return st, ob, stop, nil
}

// verify reads back everything the store must hold.
func verify(st *state.Store, ob *outbox.Outbox, exp *expected) error {
	snap, err := st.Snapshot()
	if err != nil {
		return err
	}
	got, _ := json.Marshal(snap)
	want, _ := json.Marshal(exp.snapshot)
	if string(got) != string(want) {
		return fmt.Errorf("snapshot: read back revision %d (%d bytes), want revision %d (%d bytes)", snap.Revision, len(got), exp.snapshot.Revision, len(want))
	}
	for id, want := range exp.restarts {
		got, err := st.Restarts(id)
		if err != nil {
			return err
		}
		if got.Restarts != want.Restarts || !got.NextRestart.Equal(want.NextRestart) {
			return fmt.Errorf("restarts of %s: %+v, want %+v", id, got, want)
		}
	}
	seq, err := st.NextSeq()
	if err != nil {
		return err
	}
	if seq <= exp.seq {
		return fmt.Errorf("sequence went back: %d after %d", seq, exp.seq)
	}
	exp.seq = seq
	return syncQueue(st, ob, exp)
}

// snapshot builds a realistic desired snapshot: pods with a few
// containers' worth of env, resources and probes (about 2 KiB a pod).
func snapshot(rev uint64, pods, generation int) wire.Snapshot {
	s := wire.Snapshot{Node: "rpi-soak", Revision: rev}
	grace := int64(30)
	for i := range pods {
		var env []api.EnvVar
		for j := range 12 {
			env = append(env, api.EnvVar{Name: fmt.Sprintf("SETTING_%02d", j), Value: fmt.Sprintf("value-%d-%d-%d", generation, i, j)})
		}
		s.Pods = append(s.Pods, wire.SnapshotPod{
			UID:       fmt.Sprintf("%08x-0000-4000-8000-%012x", i, generation),
			Name:      fmt.Sprintf("app-%d-%x", i, generation),
			Namespace: "default",
			Labels:    map[string]string{"app": fmt.Sprintf("app-%d", i), "controller-revision-hash": strconv.Itoa(generation)},
			SpecHash:  fmt.Sprintf("%016x", generation*31+i),
			Spec: api.PodSpec{
				RestartPolicy:                 "Always",
				TerminationGracePeriodSeconds: &grace,
				NodeSelector:                  map[string]string{"kubernetes.io/arch": "arm"},
				Containers: []api.Container{{
					Name:    "main",
					Image:   fmt.Sprintf("registry.site.local:5000/fleet/app-%d:v%d", i, generation),
					Command: []string{"/bin/app", "--config", "/etc/app/config.yaml", "--listen", ":8080"},
					Env:     env,
					Resources: api.ResourceRequirements{
						Limits:   api.ResourceList{api.ResourceCPU: "250m", api.ResourceMemory: "64Mi"},
						Requests: api.ResourceList{api.ResourceCPU: "100m", api.ResourceMemory: "32Mi"},
					},
				}},
			},
		})
	}
	return s
}

func statusReport(snap wire.Snapshot, at time.Time) []byte {
	type pod struct {
		UID, Name, Phase string
		Ready            bool
		Restarts         int
		Since            time.Time
	}
	var pods []pod
	for _, p := range snap.Pods {
		pods = append(pods, pod{UID: p.UID, Name: p.Name, Phase: "Running", Ready: true, Since: at})
	}
	b, _ := json.Marshal(map[string]any{"observedRevision": snap.Revision, "pods": pods})
	return b
}

func event(at time.Time, generation int) []byte {
	b, _ := json.Marshal(map[string]any{"reason": "BackOff", "message": fmt.Sprintf("Back-off restarting failed container main (generation %d)", generation), "time": at})
	return b
}

// metricSample is a node and per-pod metric sample of about size bytes:
// named numeric series with varying values, which compress as real
// samples do (about 2 to 3 times), not as padding would.
func metricSample(at time.Time, size int) []byte {
	series := map[string]float64{}
	seed := uint64(at.UnixNano())
	for i := 0; len(series)*28 < size-60; i++ {
		seed = seed*6364136223846793005 + 1442695040888963407
		series[fmt.Sprintf("pod_%02d_cpu_%d", i/4, i%4)] = float64(seed>>40) / 1e3
	}
	b, _ := json.Marshal(map[string]any{"time": at, "series": series})
	return b
}

// sampler reads /proc/self/maps periodically and keeps the peak. Under
// qemu-user, /proc/self/maps shows the guest's own mappings, which is what
// a 32-bit board would have.
type sampler struct {
	storeDir string

	mu       sync.Mutex
	max      Mapping
	maxMaps  int
	samples  int
	lastErr  error
	lastRead Mapping
}

func newSampler(storeDir string) *sampler { return &sampler{storeDir: storeDir} }

func (s *sampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.now()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// now takes a reading and folds it into the peak.
func (s *sampler) now() Mapping {
	m, err := readMaps(s.storeDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
		return s.lastRead
	}
	s.samples++
	s.lastRead = m
	if m.TotalMiB > s.max.TotalMiB {
		s.max.TotalMiB = m.TotalMiB
	}
	if m.StoreMiB > s.max.StoreMiB {
		s.max.StoreMiB = m.StoreMiB
	}
	s.maxMaps = max(s.maxMaps, m.StoreMaps)
	s.max.StoreMaps = s.maxMaps
	return m
}

func (s *sampler) peak() (Mapping, int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples, s.maxMaps
}

func readMaps(storeDir string) (Mapping, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return Mapping{}, err
	}
	defer f.Close()
	var total, store uint64
	var m Mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b < a {
			continue
		}
		total += b - a
		if len(fields) >= 6 && strings.HasPrefix(fields[5], storeDir+"/") {
			store += b - a
			m.StoreMaps++
		}
	}
	if err := sc.Err(); err != nil {
		return Mapping{}, err
	}
	m.TotalMiB = mib(total)
	m.StoreMiB = mib(store)
	return m, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// peakRSS reads VmHWM from /proc/self/status, in MiB.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return mib(kb << 10)
		}
	}
	return 0
}

func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func mib(b uint64) float64 { return float64(b*100/(1<<20)) / 100 }
