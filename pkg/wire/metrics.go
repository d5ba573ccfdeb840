package wire

import "time"

// TypeMetrics is a MetricsBatch on a node's metrics topic.
const TypeMetrics = "Metrics"

// MetricsBatch is one or more usage samples of a node, oldest first. An
// agent sends one raw sample per sampling interval while it is connected;
// what it gathered while offline arrives later, through its outbox, as
// samples merged per minute (Merged > 1).
type MetricsBatch struct {
	Samples []MetricSample `json:"samples"`
	// Heartbeat, when set, is the agent's heartbeat as of when the batch
	// was queued: with metrics on, a sample every interval carries it and
	// the agent sends no separate Heartbeat, which halves a fleet's
	// steady message rate. The receiver orders it by the batch's
	// sequence number, as it does a Heartbeat's.
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
}

// MetricSample is the state of a node and of its pods over one window,
// ending at Time. Gauges (memory, filesystems, temperatures) are the
// values at Time for a raw sample and the mean over the window for a
// merged one; rates (CPU, disk and network throughput) are averages over
// the window; counters (network bytes and errors, restarts) are the
// values at Time.
type MetricSample struct {
	Time time.Time `json:"time"`
	// WindowSeconds is how long the sample covers: the sampling interval
	// for a raw sample, the span of its raw samples for a merged one. The
	// window of a sample is [Time-Window, Time].
	WindowSeconds float64 `json:"window"`
	// Merged counts the raw samples merged into this one; 0 or 1 means raw.
	Merged int         `json:"merged,omitempty"`
	Node   NodeSample  `json:"node"`
	Pods   []PodSample `json:"pods,omitempty"`
}

// Window returns the sample's window as a duration.
func (s *MetricSample) Window() time.Duration {
	return time.Duration(s.WindowSeconds * float64(time.Second))
}

// NodeSample is the board's usage.
type NodeSample struct {
	CPU         CPUSample          `json:"cpu"`
	Load        *LoadSample        `json:"load,omitempty"`
	Memory      MemorySample       `json:"memory"`
	Filesystems []FilesystemSample `json:"filesystems,omitempty"`
	Disks       []DiskSample       `json:"disks,omitempty"`
	Networks    []NetworkSample    `json:"networks,omitempty"`
	// Temperatures lists the board's sensors; a board without sensors has
	// none (absent is absent, not zero).
	Temperatures  []TemperatureSample `json:"temperatures,omitempty"`
	UptimeSeconds uint64              `json:"uptime"`
	Processes     int                 `json:"processes"`
	// StateStoreFull is true while the agent's state store refuses writes
	// because its disk has less free space than the store keeps in
	// reserve (its outbox drops what it cannot queue): the hub sets the
	// node's DiskPressure.
	StateStoreFull bool `json:"stateStoreFull,omitempty"`
}

// CPUSample is CPU usage in cores (1.0 is one core busy for the window).
type CPUSample struct {
	Cores      int     `json:"cores"`
	UsageCores float64 `json:"usage"`
	// PerCore is each core's busy fraction (0 to 1), in core order.
	PerCore []float64 `json:"perCore,omitempty"`
}

// LoadSample holds the load averages.
type LoadSample struct {
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// MemorySample is the board's memory. Used memory is Total - Available,
// which is what the node's MEMORY column and MemoryPressure use.
type MemorySample struct {
	TotalBytes     uint64 `json:"total"`
	AvailableBytes uint64 `json:"available"`
	SwapTotalBytes uint64 `json:"swapTotal,omitempty"`
	SwapUsedBytes  uint64 `json:"swapUsed,omitempty"`
}

// UsedBytes is Total - Available.
func (m MemorySample) UsedBytes() uint64 {
	if m.AvailableBytes > m.TotalBytes {
		return 0
	}
	return m.TotalBytes - m.AvailableBytes
}

// FilesystemSample is one mounted block-device filesystem.
type FilesystemSample struct {
	Mount          string `json:"mount"`
	Device         string `json:"device,omitempty"`
	Type           string `json:"type,omitempty"`
	TotalBytes     uint64 `json:"total"`
	UsedBytes      uint64 `json:"used"`
	AvailableBytes uint64 `json:"available"`
	InodesTotal    uint64 `json:"inodesTotal,omitempty"`
	InodesUsed     uint64 `json:"inodesUsed,omitempty"`
	// State is true for the filesystem that holds the agent's state
	// directory (container logs, volumes): with the root filesystem, the
	// one DiskPressure watches.
	State bool `json:"state,omitempty"`
}

// DiskSample is one block device's I/O rates over the window.
type DiskSample struct {
	Device                string  `json:"device"`
	ReadBytesPerSecond    float64 `json:"readBps"`
	WriteBytesPerSecond   float64 `json:"writeBps"`
	ReadsPerSecond        float64 `json:"readIops"`
	WritesPerSecond       float64 `json:"writeIops"`
	IOTimeFractionPercent float64 `json:"busy,omitempty"`
}

// NetworkSample is one interface: rates over the window and the
// interface's counters since boot.
type NetworkSample struct {
	Interface          string  `json:"iface"`
	RxBytesPerSecond   float64 `json:"rxBps"`
	TxBytesPerSecond   float64 `json:"txBps"`
	RxBytes            uint64  `json:"rxBytes"`
	TxBytes            uint64  `json:"txBytes"`
	RxErrors           uint64  `json:"rxErrors,omitempty"`
	TxErrors           uint64  `json:"txErrors,omitempty"`
	RxDropped          uint64  `json:"rxDropped,omitempty"`
	TxDropped          uint64  `json:"txDropped,omitempty"`
	RxErrorsPerSecond  float64 `json:"rxErrorsPs,omitempty"`
	TxErrorsPerSecond  float64 `json:"txErrorsPs,omitempty"`
	RxDroppedPerSecond float64 `json:"rxDroppedPs,omitempty"`
}

// TemperatureSample is one sensor's reading.
type TemperatureSample struct {
	Sensor  string  `json:"sensor"`
	Celsius float64 `json:"celsius"`
}

// PodSample is the usage of one pod's containers.
type PodSample struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	UID        string            `json:"uid"`
	Containers []ContainerSample `json:"containers"`
}

// ContainerSample is one container's usage, read from its cgroup.
type ContainerSample struct {
	Name string `json:"name"`
	// CPUUsageCores is absent for a container first seen in this sample
	// (no interval to measure over yet).
	CPUUsageCores *float64 `json:"cpu,omitempty"`
	// CPUSeconds is the container's cumulative CPU time.
	CPUSeconds float64 `json:"cpuSeconds"`
	// MemoryWorkingSetBytes is usage minus inactive file cache, as the
	// kubelet computes it: what the kernel cannot easily reclaim.
	MemoryWorkingSetBytes uint64 `json:"workingSet"`
	MemoryUsageBytes      uint64 `json:"memoryUsage"`
	Restarts              int32  `json:"restarts"`
}
