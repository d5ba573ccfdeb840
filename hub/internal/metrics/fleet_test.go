package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"net/http/httptest"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func f64(v float64) *float64 { return &v }

// busy is a sample of a 4-core, 1000-byte board with one pod.
func busy(t time.Time, cpu float64, availBytes uint64, fsUsed uint64) wire.MetricSample {
	return wire.MetricSample{
		Time: t, WindowSeconds: 10,
		Node: wire.NodeSample{
			CPU:    wire.CPUSample{Cores: 4, UsageCores: cpu, PerCore: []float64{cpu / 4, cpu / 4, cpu / 4, cpu / 4}},
			Memory: wire.MemorySample{TotalBytes: 1000, AvailableBytes: availBytes},
			Load:   &wire.LoadSample{Load1: 1.5, Load5: 1, Load15: 0.5},
			Filesystems: []wire.FilesystemSample{
				{Mount: "/", Device: "/dev/sda1", TotalBytes: 100, UsedBytes: fsUsed, AvailableBytes: 100 - fsUsed},
				{Mount: "/boot", Device: "/dev/sda2", TotalBytes: 100, UsedBytes: 99, AvailableBytes: 1}, // not watched
			},
			Networks:      []wire.NetworkSample{{Interface: "eth0", RxBytesPerSecond: 100, RxErrors: 3}},
			Temperatures:  []wire.TemperatureSample{{Sensor: "cpu", Celsius: 51.5}, {Sensor: "gpu", Celsius: 48}},
			UptimeSeconds: 3600, Processes: 120,
		},
		Pods: []wire.PodSample{{Namespace: "default", Name: "web", UID: "u1", Containers: []wire.ContainerSample{
			{Name: "a", CPUUsageCores: f64(0.25), CPUSeconds: 12, MemoryWorkingSetBytes: 100 << 20, MemoryUsageBytes: 150 << 20, Restarts: 2},
			{Name: "b", MemoryWorkingSetBytes: 20 << 20},
		}}},
	}
}

func newFleet(t *testing.T, now *time.Time) *Fleet {
	series := NewMemory(time.Hour, func() time.Time { return *now })
	return NewFleet(FleetOptions{Series: series, Retention: time.Hour, Now: func() time.Time { return *now }})
}

func TestFleetKeepsLatestAndRejectsOutOfRange(t *testing.T) {
	now := at(0)
	f := newFleet(t, &now)
	f.Add("n1", wire.MetricsBatch{Samples: []wire.MetricSample{
		busy(at(-20), 1, 500, 10),
		busy(at(-10), 2, 500, 10),
		busy(at(-7200), 9, 500, 10),          // past retention
		busy(at(3600), 9, 500, 10),           // an hour in the future
		{Time: at(-5), WindowSeconds: -1},    // malformed
		{Time: at(-4), WindowSeconds: 1e308}, // a window longer than retention
		busy(at(-15), 3, 500, 10),            // late, older than latest
	}})
	if s, _ := f.Latest("n1"); s.Node.CPU.UsageCores != 2 {
		t.Errorf("latest cpu %v, want the newest sample's 2", s.Node.CPU.UsageCores)
	}
	st := f.Stats()
	if st.Received != 7 || st.Rejected != 4 {
		t.Errorf("stats %+v, want 7 received and 4 rejected", st)
	}
	// Range sees queued samples before the flush and stored ones after.
	got, err := f.Range("n1", at(-60))
	if err != nil || len(got) != 3 {
		t.Fatalf("range before flush: %d samples, %v", len(got), err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	got, _ = f.Range("n1", at(-60))
	if len(got) != 3 || !got[0].Time.Equal(at(-20)) || !got[2].Time.Equal(at(-10)) {
		t.Fatalf("range after flush: %+v", got)
	}
	if st := f.Stats(); st.Written != 3 {
		t.Errorf("written %d", st.Written)
	}
	// Stale samples are not current.
	now = at(600)
	if len(f.Current()) != 0 {
		t.Error("a 10-minute-old sample is current")
	}
	if _, ok := f.Latest("n1"); !ok {
		t.Error("Latest forgot a stale sample")
	}
}

func TestFleetLoadsLatestFromTheStore(t *testing.T) {
	now := at(0)
	series := NewMemory(time.Hour, func() time.Time { return now })
	_ = series.Append([]Entry{{Node: "n1", Sample: busy(at(-30), 1, 1, 1)}, {Node: "n1", Sample: busy(at(-20), 2, 1, 1)}})
	f := NewFleet(FleetOptions{Series: series, Retention: time.Hour, Now: func() time.Time { return now }})
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	if s, ok := f.Latest("n1"); !ok || s.Node.CPU.UsageCores != 2 {
		t.Errorf("after load: %+v %v", s, ok)
	}
}

func TestUsageAndViews(t *testing.T) {
	s := busy(at(0), 1, 250, 45)
	u := Usage(s)
	if u.CPUPercent != 25 || u.MemoryUsedBytes != 750 || u.MemoryPercent != 75 || u.DiskPercent != 45 {
		t.Errorf("usage %+v: want cpu 25%%, memory 750 B (75%%), disk 45%% (/boot is not watched)", u)
	}
	if u.TemperatureCelsius == nil || *u.TemperatureCelsius != 51.5 || u.Pods != 1 {
		t.Errorf("temperature %v pods %d", u.TemperatureCelsius, u.Pods)
	}
	noSensors := s
	noSensors.Node.Temperatures = nil
	if Usage(noSensors).TemperatureCelsius != nil {
		t.Error("a board without sensors got a temperature")
	}
	nm := NodeMetrics("n1", s)
	if nm.Usage[api.ResourceCPU] != "1000m" || nm.Usage[api.ResourceMemory] != "0Ki" || nm.Window != "10s" {
		t.Errorf("node metrics %+v", nm)
	}
	pm := PodMetrics("n1", s)
	if len(pm) != 1 || pm[0].Containers[0].Usage[api.ResourceCPU] != "250m" || pm[0].Containers[0].Usage[api.ResourceMemory] != "102400Ki" ||
		pm[0].Containers[1].Usage[api.ResourceCPU] != "0m" || pm[0].NodeName != "n1" {
		t.Errorf("pod metrics %+v", pm)
	}
}

func TestSeriesColumnsAndFilters(t *testing.T) {
	a, b := busy(at(-20), 1, 500, 10), busy(at(-10), 2, 400, 10)
	b.Node.Temperatures = nil // a gap in one column
	ser := SeriesOf("n1", at(-60), []wire.MetricSample{a, b}, nil)
	if ser.Columns[0] != "cpu.usage_cores" || len(ser.Points) != 2 {
		t.Fatalf("columns %v", ser.Columns)
	}
	col := func(name string) int {
		for i, c := range ser.Columns {
			if c == name {
				return i
			}
		}
		t.Fatalf("no column %s in %v", name, ser.Columns)
		return -1
	}
	if v := ser.Points[1].Values[col("memory.percent")]; v == nil || *v != 60 {
		t.Errorf("memory.percent = %v", v)
	}
	if v := ser.Points[1].Values[col("temperature.cpu.celsius")]; v != nil {
		t.Errorf("absent temperature = %v, want null", *v)
	}
	if v := ser.Points[0].Values[col("pod.default/web.cpu_cores")]; v == nil || *v != 0.25 {
		t.Errorf("pod cpu = %v", v)
	}
	cpu := SeriesOf("n1", at(-60), []wire.MetricSample{a}, []string{"cpu"})
	for _, c := range cpu.Columns {
		if !strings.HasPrefix(c, "cpu.") {
			t.Errorf("--metric cpu selected %s", c)
		}
	}
	if len(cpu.Columns) != 3+4 {
		t.Errorf("cpu columns %v, want 3 base and 4 per-core", cpu.Columns)
	}
}

// scrape serves reg like /metrics does and parses the answer back with
// Prometheus' own parser.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, rec.Body)
	}
	return fams
}

// value finds the sample of family name with the given labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		ok := len(m.GetLabel()) == len(labels)
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestPrometheusFleetGauges(t *testing.T) {
	now := at(0)
	f := newFleet(t, &now)
	f.Add("n1", wire.MetricsBatch{Samples: []wire.MetricSample{busy(at(-5), 1.5, 250, 45)}})
	old := busy(at(-3600+60), 3, 1, 1) // within retention but stale
	f.Add("gone", wire.MetricsBatch{Samples: []wire.MetricSample{old}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewFleetCollector(f))
	fams := scrape(t, reg)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"flotilla_node_cpu_usage_cores", map[string]string{"node": "n1"}, 1.5},
		{"flotilla_node_memory_used_bytes", map[string]string{"node": "n1"}, 750},
		{"flotilla_node_load1", map[string]string{"node": "n1"}, 1.5},
		{"flotilla_node_filesystem_used_bytes", map[string]string{"node": "n1", "mountpoint": "/", "device": "/dev/sda1"}, 45},
		{"flotilla_node_temperature_celsius", map[string]string{"node": "n1", "sensor": "cpu"}, 51.5},
		{"flotilla_node_network_receive_errors_total", map[string]string{"node": "n1", "interface": "eth0"}, 3},
		{"flotilla_pod_cpu_usage_cores", map[string]string{"node": "n1", "namespace": "default", "pod": "web"}, 0.25},
		{"flotilla_pod_memory_working_set_bytes", map[string]string{"node": "n1", "namespace": "default", "pod": "web"}, 120 << 20},
		{"flotilla_container_restarts_total", map[string]string{"node": "n1", "namespace": "default", "pod": "web", "container": "a"}, 2},
		{"flotilla_container_memory_working_set_bytes", map[string]string{"node": "n1", "namespace": "default", "pod": "web", "container": "b"}, 20 << 20},
	} {
		got, ok := value(t, fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %t), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if fams["flotilla_node_network_receive_errors_total"].GetType() != dto.MetricType_COUNTER {
		t.Error("error counters are not counters")
	}
	// A container without a CPU rate yet has no CPU gauge, not a zero.
	if _, ok := value(t, fams, "flotilla_container_cpu_usage_cores", map[string]string{"node": "n1", "namespace": "default", "pod": "web", "container": "b"}); ok {
		t.Error("container b has a CPU gauge before it has a rate")
	}
	if _, ok := value(t, fams, "flotilla_node_cpu_cores", map[string]string{"node": "gone"}); ok {
		t.Error("a stale node is exported")
	}
}

func TestPrometheusHubState(t *testing.T) {
	st := store.NewMemory()
	err := st.Update(func(tx store.Tx) error {
		ready := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "a"},
			Status: api.NodeStatus{Online: true, Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}, {Type: api.NodeMemoryPressure, Status: api.ConditionTrue}}}}
		down := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "b"}}
		ds := &api.DaemonSet{TypeMeta: api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDaemonSet}, ObjectMeta: api.ObjectMeta{Name: "web", Namespace: "default"},
			Status: api.DaemonSetStatus{Rollout: &api.RolloutStatus{Revision: 3, Phase: api.RolloutProgressing, Updated: 4, Total: 10, Failed: 1}}}
		for _, o := range []api.Object{ready, down, ds} {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	hub := NewHubMetrics(reg)
	hub.ObserveFlush(3*time.Millisecond, 7)
	dsSync := hub.SyncObserver("daemonset")
	dsSync(2 * time.Millisecond)
	dsSync(40 * time.Millisecond)
	handled := 0
	h := hub.Incoming(func(string, []byte) { handled++ })
	h(wire.NodeTopic("a", wire.TopicStatus), nil)
	h(wire.NodeTopic("a", wire.TopicMetrics), nil)
	h(wire.NodeTopic("a", wire.TopicMetrics), nil)
	dir := t.TempDir()
	reg.MustRegister(NewStateCollector(StateOptions{Store: hub.Store("test", st), Dirs: map[string]string{"objects": dir},
		Ingest: func() (uint64, uint64) { return 10, 1 }}))
	// Collectors run concurrently: the first scrape's own store read is
	// timed by the time the second one gathers the histogram.
	scrape(t, reg)
	fams := scrape(t, reg)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"flotilla_hub_nodes", nil, 2},
		{"flotilla_hub_nodes_connected", nil, 1},
		{"flotilla_hub_nodes_under_pressure", map[string]string{"condition": "MemoryPressure"}, 1},
		{"flotilla_rollout_nodes", map[string]string{"kind": "DaemonSet", "namespace": "default", "name": "web", "state": "updated"}, 4},
		{"flotilla_rollout_nodes", map[string]string{"kind": "DaemonSet", "namespace": "default", "name": "web", "state": "total"}, 10},
		{"flotilla_rollout_phase", map[string]string{"kind": "DaemonSet", "namespace": "default", "name": "web", "phase": "Progressing"}, 1},
		{"flotilla_rollout_revision", map[string]string{"kind": "DaemonSet", "namespace": "default", "name": "web"}, 3},
		{"flotilla_hub_mqtt_messages_received_total", map[string]string{"kind": "metrics"}, 2},
		{"flotilla_hub_ingest_flush_seconds", nil, 1},
		{"flotilla_hub_controller_sync_seconds", map[string]string{"controller": "daemonset"}, 2},
		{"flotilla_hub_ingest_messages_total", map[string]string{"result": "dropped"}, 1},
		{"flotilla_hub_scrape_errors", nil, 0},
	} {
		got, ok := value(t, fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %t), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if n, _ := value(t, fams, "flotilla_hub_store_transaction_seconds", map[string]string{"component": "test", "type": "view"}); n < 1 {
		t.Errorf("store views timed: %v, want at least the first scrape's", n)
	}
	if handled != 3 {
		t.Errorf("wrapped handler ran %d times", handled)
	}
	if _, ok := value(t, fams, "flotilla_hub_store_size_bytes", map[string]string{"store": "objects"}); !ok {
		t.Error("no store size")
	}
}

func TestPressureConditions(t *testing.T) {
	now := at(0)
	f := newFleet(t, &now)
	st := store.NewMemory()
	_ = st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n1"},
			Status: api.NodeStatus{Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}}})
	})
	p := NewPressure(PressureOptions{Store: st, Fleet: f, MemoryThreshold: 90, DiskThreshold: 80})
	conds := func() (api.ConditionStatus, api.ConditionStatus, uint64) {
		t.Helper()
		var n *api.Node
		_ = st.View(func(tx store.Tx) error {
			var err error
			n, err = store.Get[api.Node](tx, "", "n1")
			return err
		})
		mem, disk := n.Status.Condition(api.NodeMemoryPressure), n.Status.Condition(api.NodeDiskPressure)
		if mem == nil || disk == nil || n.Status.Condition(api.NodeReady).Status != api.ConditionTrue {
			t.Fatalf("conditions %+v", n.Status.Conditions)
		}
		return mem.Status, disk.Status, st.Version()
	}
	step := func(sec int, availBytes, fsUsed uint64) {
		now = at(sec)
		f.Add("n1", wire.MetricsBatch{Samples: []wire.MetricSample{busy(at(sec), 1, availBytes, fsUsed)}})
		if err := p.Sync(f.TakeChanged()); err != nil {
			t.Fatal(err)
		}
	}
	step(10, 500, 50) // 50% memory, 50% disk
	mem, disk, v1 := conds()
	if mem != api.ConditionFalse || disk != api.ConditionFalse {
		t.Fatalf("calm node: memory %s disk %s", mem, disk)
	}
	step(20, 450, 50) // no change: no write
	if _, _, v := conds(); v != v1 {
		t.Errorf("an unchanged node was written (version %d → %d)", v1, v)
	}
	step(30, 50, 85) // 95% memory, 85% disk
	if mem, disk, _ := conds(); mem != api.ConditionTrue || disk != api.ConditionTrue {
		t.Fatalf("full node: memory %s disk %s", mem, disk)
	}
	step(40, 110, 85) // 89%: inside the hysteresis band, still pressure
	if mem, _, _ := conds(); mem != api.ConditionTrue {
		t.Errorf("memory pressure cleared at 89%% (threshold 90, hysteresis 2)")
	}
	step(50, 200, 50) // 80%: cleared
	if mem, disk, _ := conds(); mem != api.ConditionFalse || disk != api.ConditionFalse {
		t.Errorf("recovered node: memory %s disk %s", mem, disk)
	}
	var evs []*api.Event
	_ = st.View(func(tx store.Tx) error {
		var err error
		evs, err = store.List[api.Event](tx, "")
		return err
	})
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason]++
	}
	if reasons["NodeHasInsufficientMemory"] != 1 || reasons["NodeHasDiskPressure"] != 1 || reasons["NodeHasSufficientMemory"] != 1 || reasons["NodeHasNoDiskPressure"] != 1 {
		t.Errorf("events %v", reasons)
	}
}
