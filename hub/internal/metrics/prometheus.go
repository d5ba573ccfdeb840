package metrics

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// HubMetrics are the hub's own counters and latencies. Each is registered
// once, in the registry the hub serves on /metrics; nothing here is global.
type HubMetrics struct {
	messagesIn     *prometheus.CounterVec
	messagesOut    *prometheus.CounterVec
	publishSeconds *prometheus.HistogramVec
	flushSeconds   prometheus.Histogram
	flushNodes     prometheus.Histogram
	txSeconds      *prometheus.HistogramVec
	syncSeconds    *prometheus.HistogramVec
}

// NewHubMetrics makes the hub's metrics and registers them with reg.
func NewHubMetrics(reg prometheus.Registerer) *HubMetrics {
	m := &HubMetrics{
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_hub_mqtt_messages_received_total",
			Help: "MQTT messages the hub received from agents, by topic kind.",
		}, []string{"kind"}),
		messagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_hub_mqtt_messages_published_total",
			Help: "MQTT messages the hub published, by topic kind and result.",
		}, []string{"kind", "result"}),
		publishSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flotilla_hub_mqtt_publish_seconds",
			Help:    "Time from publishing a message to the broker's acknowledgement, by topic kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"kind"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flotilla_hub_ingest_flush_seconds",
			Help:    "Time ingest takes to write one batch of agent updates to the store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
		flushNodes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flotilla_hub_ingest_flush_nodes",
			Help:    "Nodes written by one ingest flush.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		txSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flotilla_hub_store_transaction_seconds",
			Help:    "Duration of store transactions, by component (controllers, dispatch, ingest, api) and type (view, update); a controller's reconcile pass is its views and updates.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"component", "type"}),
		syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flotilla_hub_controller_sync_seconds",
			Help:    "Duration of one reconcile pass over the fleet, by controller (daemonset, deployment).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"controller"}),
	}
	reg.MustRegister(m.messagesIn, m.messagesOut, m.publishSeconds, m.flushSeconds, m.flushNodes, m.txSeconds, m.syncSeconds)
	return m
}

// kindOf is a topic's kind, or "other".
func kindOf(topic string) string {
	if _, kind, err := wire.ParseNodeTopic(topic); err == nil {
		switch kind {
		case wire.TopicDesired, wire.TopicStatus, wire.TopicMetrics, wire.TopicEvents, wire.TopicOnline, wire.TopicRequests, wire.TopicReplies:
			return kind
		}
	}
	return "other"
}

// Incoming wraps a message handler to count what it receives.
func (m *HubMetrics) Incoming(h link.Handler) link.Handler {
	return func(topic string, payload []byte) {
		m.messagesIn.WithLabelValues(kindOf(topic)).Inc()
		h(topic, payload)
	}
}

// Publisher publishes one message (the hub's MQTT session).
type Publisher interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
}

// countingPublisher counts and times what it publishes.
type countingPublisher struct {
	m    *HubMetrics
	next Publisher
}

// Outgoing wraps a publisher to count and time what it publishes.
func (m *HubMetrics) Outgoing(p Publisher) Publisher { return countingPublisher{m, p} }

func (c countingPublisher) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	kind := kindOf(topic)
	start := time.Now()
	err := c.next.Publish(ctx, topic, qos, retained, payload)
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		c.m.publishSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	}
	c.m.messagesOut.WithLabelValues(kind, result).Inc()
	return err
}

// SyncObserver returns what a controller calls after each reconcile pass.
func (m *HubMetrics) SyncObserver(controller string) func(time.Duration) {
	h := m.syncSeconds.WithLabelValues(controller)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// ObserveFlush records one ingest flush.
func (m *HubMetrics) ObserveFlush(d time.Duration, nodes int) {
	m.flushSeconds.Observe(d.Seconds())
	m.flushNodes.Observe(float64(nodes))
}

// Store wraps st so that component's transactions are timed.
func (m *HubMetrics) Store(component string, st store.Store) store.Store {
	return timedStore{Store: st, view: m.txSeconds.WithLabelValues(component, "view"), update: m.txSeconds.WithLabelValues(component, "update")}
}

type timedStore struct {
	store.Store
	view, update prometheus.Observer
}

func (t timedStore) View(fn func(store.Tx) error) error {
	start := time.Now()
	defer func() { t.view.Observe(time.Since(start).Seconds()) }()
	return t.Store.View(fn)
}

func (t timedStore) Update(fn func(store.Tx) error) error {
	start := time.Now()
	defer func() { t.update.Observe(time.Since(start).Seconds()) }()
	return t.Store.Update(fn)
}

// fleetCollector exposes each node's latest current sample as gauges,
// read at scrape time: the fleet is not mirrored into gauge vectors that
// would keep a vanished node's series forever.
type fleetCollector struct {
	fleet *Fleet
	descs map[string]*prometheus.Desc
}

type metricDef struct {
	name, help string
	labels     []string
	counter    bool
}

var fleetDefs = []metricDef{
	{"flotilla_node_sample_timestamp_seconds", "Time of the node's latest sample (Unix seconds).", []string{"node"}, false},
	{"flotilla_node_cpu_cores", "CPU cores of the node.", []string{"node"}, false},
	{"flotilla_node_cpu_usage_cores", "CPU in use, in cores, over the latest sample's window.", []string{"node"}, false},
	{"flotilla_node_cpu_core_usage_ratio", "Busy fraction of one core over the latest sample's window.", []string{"node", "core"}, false},
	{"flotilla_node_memory_total_bytes", "Memory of the node.", []string{"node"}, false},
	{"flotilla_node_memory_used_bytes", "Memory in use (total minus available).", []string{"node"}, false},
	{"flotilla_node_memory_available_bytes", "Memory available without swapping.", []string{"node"}, false},
	{"flotilla_node_swap_total_bytes", "Swap of the node.", []string{"node"}, false},
	{"flotilla_node_swap_used_bytes", "Swap in use.", []string{"node"}, false},
	{"flotilla_node_load1", "1-minute load average.", []string{"node"}, false},
	{"flotilla_node_load5", "5-minute load average.", []string{"node"}, false},
	{"flotilla_node_load15", "15-minute load average.", []string{"node"}, false},
	{"flotilla_node_filesystem_size_bytes", "Size of a mounted filesystem.", []string{"node", "mountpoint", "device"}, false},
	{"flotilla_node_filesystem_used_bytes", "Bytes used on a mounted filesystem.", []string{"node", "mountpoint", "device"}, false},
	{"flotilla_node_filesystem_avail_bytes", "Bytes available to unprivileged users on a mounted filesystem.", []string{"node", "mountpoint", "device"}, false},
	{"flotilla_node_disk_read_bytes_per_second", "Bytes read per second from a block device.", []string{"node", "device"}, false},
	{"flotilla_node_disk_written_bytes_per_second", "Bytes written per second to a block device.", []string{"node", "device"}, false},
	{"flotilla_node_network_receive_bytes_per_second", "Bytes received per second on an interface.", []string{"node", "interface"}, false},
	{"flotilla_node_network_transmit_bytes_per_second", "Bytes sent per second on an interface.", []string{"node", "interface"}, false},
	{"flotilla_node_network_receive_errors_total", "Receive errors on an interface since boot.", []string{"node", "interface"}, true},
	{"flotilla_node_network_transmit_errors_total", "Transmit errors on an interface since boot.", []string{"node", "interface"}, true},
	{"flotilla_node_temperature_celsius", "A sensor's temperature; absent on boards without sensors.", []string{"node", "sensor"}, false},
	{"flotilla_node_uptime_seconds", "Time since the node booted.", []string{"node"}, false},
	{"flotilla_node_processes", "Processes running on the node.", []string{"node"}, false},
	{"flotilla_node_pods", "Pods with running containers on the node.", []string{"node"}, false},
	{"flotilla_pod_cpu_usage_cores", "CPU a pod's containers use, in cores.", []string{"node", "namespace", "pod"}, false},
	{"flotilla_pod_memory_working_set_bytes", "Working set of a pod's containers.", []string{"node", "namespace", "pod"}, false},
	{"flotilla_container_cpu_usage_cores", "CPU a container uses, in cores.", []string{"node", "namespace", "pod", "container"}, false},
	{"flotilla_container_cpu_usage_seconds_total", "CPU time a container's current run has used.", []string{"node", "namespace", "pod", "container"}, true},
	{"flotilla_container_memory_working_set_bytes", "Working set of a container (usage minus inactive file cache).", []string{"node", "namespace", "pod", "container"}, false},
	{"flotilla_container_memory_usage_bytes", "Memory usage of a container, page cache included.", []string{"node", "namespace", "pod", "container"}, false},
	{"flotilla_container_restarts_total", "Restarts of a container.", []string{"node", "namespace", "pod", "container"}, true},
}

// NewFleetCollector exposes the fleet's latest samples.
func NewFleetCollector(f *Fleet) prometheus.Collector {
	c := &fleetCollector{fleet: f, descs: map[string]*prometheus.Desc{}}
	for _, d := range fleetDefs {
		c.descs[d.name] = prometheus.NewDesc(d.name, d.help, d.labels, nil)
	}
	return c
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	types := map[string]prometheus.ValueType{}
	for _, d := range fleetDefs {
		types[d.name] = prometheus.GaugeValue
		if d.counter {
			types[d.name] = prometheus.CounterValue
		}
	}
	emit := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], types[name], v, labels...)
	}
	for node, s := range c.fleet.Current() {
		n := s.Node
		emit("flotilla_node_sample_timestamp_seconds", float64(s.Time.UnixNano())/1e9, node)
		emit("flotilla_node_cpu_cores", float64(n.CPU.Cores), node)
		emit("flotilla_node_cpu_usage_cores", n.CPU.UsageCores, node)
		for i, v := range n.CPU.PerCore {
			emit("flotilla_node_cpu_core_usage_ratio", v, node, strconv.Itoa(i))
		}
		emit("flotilla_node_memory_total_bytes", float64(n.Memory.TotalBytes), node)
		emit("flotilla_node_memory_used_bytes", float64(n.Memory.UsedBytes()), node)
		emit("flotilla_node_memory_available_bytes", float64(n.Memory.AvailableBytes), node)
		emit("flotilla_node_swap_total_bytes", float64(n.Memory.SwapTotalBytes), node)
		emit("flotilla_node_swap_used_bytes", float64(n.Memory.SwapUsedBytes), node)
		if n.Load != nil {
			emit("flotilla_node_load1", n.Load.Load1, node)
			emit("flotilla_node_load5", n.Load.Load5, node)
			emit("flotilla_node_load15", n.Load.Load15, node)
		}
		for _, fs := range n.Filesystems {
			emit("flotilla_node_filesystem_size_bytes", float64(fs.TotalBytes), node, fs.Mount, fs.Device)
			emit("flotilla_node_filesystem_used_bytes", float64(fs.UsedBytes), node, fs.Mount, fs.Device)
			emit("flotilla_node_filesystem_avail_bytes", float64(fs.AvailableBytes), node, fs.Mount, fs.Device)
		}
		for _, d := range n.Disks {
			emit("flotilla_node_disk_read_bytes_per_second", d.ReadBytesPerSecond, node, d.Device)
			emit("flotilla_node_disk_written_bytes_per_second", d.WriteBytesPerSecond, node, d.Device)
		}
		for _, ni := range n.Networks {
			emit("flotilla_node_network_receive_bytes_per_second", ni.RxBytesPerSecond, node, ni.Interface)
			emit("flotilla_node_network_transmit_bytes_per_second", ni.TxBytesPerSecond, node, ni.Interface)
			emit("flotilla_node_network_receive_errors_total", float64(ni.RxErrors), node, ni.Interface)
			emit("flotilla_node_network_transmit_errors_total", float64(ni.TxErrors), node, ni.Interface)
		}
		for _, t := range n.Temperatures {
			emit("flotilla_node_temperature_celsius", t.Celsius, node, t.Sensor)
		}
		emit("flotilla_node_uptime_seconds", float64(n.UptimeSeconds), node)
		emit("flotilla_node_processes", float64(n.Processes), node)
		emit("flotilla_node_pods", float64(len(s.Pods)), node)
		for _, p := range s.Pods {
			var cpu, ws float64
			for _, ct := range p.Containers {
				labels := []string{node, p.Namespace, p.Name, ct.Name}
				if ct.CPUUsageCores != nil {
					cpu += *ct.CPUUsageCores
					emit("flotilla_container_cpu_usage_cores", *ct.CPUUsageCores, labels...)
				}
				ws += float64(ct.MemoryWorkingSetBytes)
				emit("flotilla_container_cpu_usage_seconds_total", ct.CPUSeconds, labels...)
				emit("flotilla_container_memory_working_set_bytes", float64(ct.MemoryWorkingSetBytes), labels...)
				emit("flotilla_container_memory_usage_bytes", float64(ct.MemoryUsageBytes), labels...)
				emit("flotilla_container_restarts_total", float64(ct.Restarts), labels...)
			}
			emit("flotilla_pod_cpu_usage_cores", cpu, node, p.Namespace, p.Name)
			emit("flotilla_pod_memory_working_set_bytes", ws, node, p.Namespace, p.Name)
		}
	}
}

// StateOptions say where the state collector reads.
type StateOptions struct {
	Store store.Store
	Fleet *Fleet
	// Dirs are the directories whose size is reported, by store name
	// ("objects", "metrics").
	Dirs map[string]string
	// Ingest returns ingest's message counters (received, dropped as bad).
	Ingest func() (received, dropped uint64)
}

// stateCollector reads the hub's state at scrape time: nodes by
// condition, rollout progress, store sizes, ingest and sample counters.
type stateCollector struct {
	opts StateOptions

	nodes, nodesConnected, nodesReady, nodePressure *prometheus.Desc
	rolloutNodes, rolloutPhase, rolloutRevision     *prometheus.Desc
	storeSize, ingestMessages, samples              *prometheus.Desc
	scrapeErrors                                    *prometheus.Desc
}

// NewStateCollector returns a collector over the hub's state.
func NewStateCollector(opts StateOptions) prometheus.Collector {
	return &stateCollector{
		opts:            opts,
		nodes:           prometheus.NewDesc("flotilla_hub_nodes", "Nodes the hub knows.", nil, nil),
		nodesConnected:  prometheus.NewDesc("flotilla_hub_nodes_connected", "Nodes whose agent is connected (online flag set and Ready).", nil, nil),
		nodesReady:      prometheus.NewDesc("flotilla_hub_nodes_ready", "Nodes whose Ready condition is True.", nil, nil),
		nodePressure:    prometheus.NewDesc("flotilla_hub_nodes_under_pressure", "Nodes with a pressure condition True, by condition.", []string{"condition"}, nil),
		rolloutNodes:    prometheus.NewDesc("flotilla_rollout_nodes", "Nodes of a rollout by state (updated, ready, unavailable, failed, offline_pending, prepulled, total).", []string{"kind", "namespace", "name", "state"}, nil),
		rolloutPhase:    prometheus.NewDesc("flotilla_rollout_phase", "1 for the phase a rollout is in.", []string{"kind", "namespace", "name", "phase"}, nil),
		rolloutRevision: prometheus.NewDesc("flotilla_rollout_revision", "Revision being rolled out.", []string{"kind", "namespace", "name"}, nil),
		storeSize:       prometheus.NewDesc("flotilla_hub_store_size_bytes", "Size on disk of the hub's stores.", []string{"store"}, nil),
		ingestMessages:  prometheus.NewDesc("flotilla_hub_ingest_messages_total", "Agent messages ingest received, and dropped as malformed.", []string{"result"}, nil),
		samples:         prometheus.NewDesc("flotilla_hub_metric_samples_total", "Metric samples received from agents, by what became of them.", []string{"result"}, nil),
		scrapeErrors:    prometheus.NewDesc("flotilla_hub_scrape_errors", "1 when reading the store for this scrape failed.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.nodesConnected, c.nodesReady, c.nodePressure, c.rolloutNodes, c.rolloutPhase, c.rolloutRevision, c.storeSize, c.ingestMessages, c.samples, c.scrapeErrors} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	failed := 0.0
	if c.opts.Store != nil {
		if err := c.collectStore(gauge); err != nil {
			failed = 1
		}
	}
	gauge(c.scrapeErrors, failed)
	names := make([]string, 0, len(c.opts.Dirs))
	for name := range c.opts.Dirs {
		names = append(names, name)
	}
	for _, name := range names {
		gauge(c.storeSize, float64(dirSize(c.opts.Dirs[name])), name)
	}
	if c.opts.Ingest != nil {
		rec, drop := c.opts.Ingest()
		ch <- prometheus.MustNewConstMetric(c.ingestMessages, prometheus.CounterValue, float64(rec), "received")
		ch <- prometheus.MustNewConstMetric(c.ingestMessages, prometheus.CounterValue, float64(drop), "dropped")
	}
	if c.opts.Fleet != nil {
		st := c.opts.Fleet.Stats()
		for result, v := range map[string]uint64{"received": st.Received, "written": st.Written, "dropped": st.Dropped, "rejected": st.Rejected} {
			ch <- prometheus.MustNewConstMetric(c.samples, prometheus.CounterValue, float64(v), result)
		}
	}
}

func (c *stateCollector) collectStore(gauge func(*prometheus.Desc, float64, ...string)) error {
	var nodes []*api.Node
	var dss []*api.DaemonSet
	var deps []*api.Deployment
	err := c.opts.Store.View(func(tx store.Tx) error {
		var err error
		if nodes, err = store.List[api.Node](tx, ""); err != nil {
			return err
		}
		if dss, err = store.List[api.DaemonSet](tx, ""); err != nil {
			return err
		}
		deps, err = store.List[api.Deployment](tx, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("read state for metrics: %w", err)
	}
	var connected, ready float64
	pressure := map[string]float64{api.NodeMemoryPressure: 0, api.NodeDiskPressure: 0}
	for _, n := range nodes {
		if n.IsReady() {
			ready++
			if n.Status.Online {
				connected++
			}
		}
		for cond := range pressure {
			if c := n.Status.Condition(cond); c != nil && c.Status == api.ConditionTrue {
				pressure[cond]++
			}
		}
	}
	gauge(c.nodes, float64(len(nodes)))
	gauge(c.nodesConnected, connected)
	gauge(c.nodesReady, ready)
	for cond, v := range pressure {
		gauge(c.nodePressure, v, cond)
	}
	rollout := func(kind, ns, name string, r *api.RolloutStatus) {
		if r == nil {
			return
		}
		for state, v := range map[string]int32{
			"updated": r.Updated, "ready": r.Ready, "unavailable": r.Unavailable, "failed": r.Failed,
			"offline_pending": r.OfflinePending, "prepulled": r.PrePulled, "total": r.Total,
		} {
			gauge(c.rolloutNodes, float64(v), kind, ns, name, state)
		}
		if r.Phase != "" {
			gauge(c.rolloutPhase, 1, kind, ns, name, string(r.Phase))
		}
		gauge(c.rolloutRevision, float64(r.Revision), kind, ns, name)
	}
	for _, ds := range dss {
		rollout(api.KindDaemonSet, ds.Namespace, ds.Name, ds.Status.Rollout)
	}
	for _, d := range deps {
		rollout(api.KindDeployment, d.Namespace, d.Name, d.Status.Rollout)
	}
	return nil
}

// dirSize is the disk space the files under dir take: allocated blocks
// where the system says, so preallocated and sparse files count for what
// they hold.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	return n
}
