package api

// Resource-usage views the hub serves from the samples its agents send.
// NodeMetrics and PodMetrics have the shape of Kubernetes' metrics.k8s.io
// objects (what `kubectl top` reads), with Flotilla's details beside.

// MetricsAPIVersion is the group version of NodeMetrics and PodMetrics.
const MetricsAPIVersion = "metrics.k8s.io/v1beta1"

// Kinds of the metrics views.
const (
	KindNodeMetrics       = "NodeMetrics"
	KindPodMetrics        = "PodMetrics"
	KindNodeMetricsSeries = "NodeMetricsSeries"
)

// NodeMetrics is a node's latest usage sample.
type NodeMetrics struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Timestamp  Time `json:"timestamp"`
	// Window is how long the sample covers ("10s").
	Window string `json:"window"`
	// Usage holds cpu (cores) and memory (bytes in use), as Kubernetes.
	Usage ResourceList `json:"usage"`
	// Details is everything else the sample says (Flotilla extension).
	Details *NodeUsage `json:"details,omitempty"`
}

// NodeMetricsList is a list of NodeMetrics.
type NodeMetricsList struct {
	TypeMeta `json:",inline"`
	Metadata ListMeta      `json:"metadata"`
	Items    []NodeMetrics `json:"items"`
}

// PodMetrics is a pod's latest usage sample.
type PodMetrics struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Timestamp  Time               `json:"timestamp"`
	Window     string             `json:"window"`
	Containers []ContainerMetrics `json:"containers"`
	// NodeName is the node the pod runs on (Flotilla extension).
	NodeName string `json:"nodeName,omitempty"`
}

// ContainerMetrics is one container's usage.
type ContainerMetrics struct {
	Name  string       `json:"name"`
	Usage ResourceList `json:"usage"`
	// Restarts is the container's restart count (Flotilla extension).
	Restarts int32 `json:"restarts,omitempty"`
}

// PodMetricsList is a list of PodMetrics.
type PodMetricsList struct {
	TypeMeta `json:",inline"`
	Metadata ListMeta     `json:"metadata"`
	Items    []PodMetrics `json:"items"`
}

// NodeUsage is a node's latest sample as the hub shows it, in a node's
// status.metrics and in NodeMetrics.details.
type NodeUsage struct {
	Timestamp     Time    `json:"timestamp"`
	WindowSeconds float64 `json:"windowSeconds"`
	// CPUCores is the number of cores; CPUUsageCores how many were busy.
	CPUCores      int     `json:"cpuCores"`
	CPUUsageCores float64 `json:"cpuUsageCores"`
	CPUPercent    float64 `json:"cpuPercent"`
	// Memory in use is total minus available.
	MemoryUsedBytes  uint64  `json:"memoryUsedBytes"`
	MemoryTotalBytes uint64  `json:"memoryTotalBytes"`
	MemoryPercent    float64 `json:"memoryPercent"`
	SwapUsedBytes    uint64  `json:"swapUsedBytes,omitempty"`
	SwapTotalBytes   uint64  `json:"swapTotalBytes,omitempty"`
	// DiskPercent is the fullest of the filesystems DiskPressure watches
	// (the root filesystem and the agent's state directory's).
	DiskPercent float64 `json:"diskPercent"`
	Load        *Load   `json:"load,omitempty"`
	// TemperatureCelsius is the hottest sensor; absent on a board without
	// sensors.
	TemperatureCelsius *float64           `json:"temperatureCelsius,omitempty"`
	UptimeSeconds      uint64             `json:"uptimeSeconds"`
	Processes          int                `json:"processes"`
	Pods               int                `json:"pods"`
	Filesystems        []FilesystemUsage  `json:"filesystems,omitempty"`
	Disks              []DiskIO           `json:"disks,omitempty"`
	Networks           []NetworkUsage     `json:"networks,omitempty"`
	Temperatures       []TemperatureUsage `json:"temperatures,omitempty"`
}

// Load holds the load averages.
type Load struct {
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// FilesystemUsage is one mounted filesystem.
type FilesystemUsage struct {
	Mount      string  `json:"mount"`
	Device     string  `json:"device,omitempty"`
	UsedBytes  uint64  `json:"usedBytes"`
	TotalBytes uint64  `json:"totalBytes"`
	Percent    float64 `json:"percent"`
}

// DiskIO is one block device's throughput.
type DiskIO struct {
	Device              string  `json:"device"`
	ReadBytesPerSecond  float64 `json:"readBytesPerSecond"`
	WriteBytesPerSecond float64 `json:"writeBytesPerSecond"`
}

// NetworkUsage is one interface's throughput and error counters.
type NetworkUsage struct {
	Interface        string  `json:"interface"`
	RxBytesPerSecond float64 `json:"rxBytesPerSecond"`
	TxBytesPerSecond float64 `json:"txBytesPerSecond"`
	RxErrors         uint64  `json:"rxErrors,omitempty"`
	TxErrors         uint64  `json:"txErrors,omitempty"`
}

// TemperatureUsage is one sensor's reading.
type TemperatureUsage struct {
	Sensor  string  `json:"sensor"`
	Celsius float64 `json:"celsius"`
}

// NodeMetricsSeries is the series the hub kept for one node: one column per
// metric, one point per sample, oldest first. A value is null where the
// sample did not have that metric.
type NodeMetricsSeries struct {
	TypeMeta `json:",inline"`
	Node     string        `json:"node"`
	Since    Time          `json:"since"`
	Columns  []string      `json:"columns"`
	Points   []SeriesPoint `json:"points"`
}

// SeriesPoint is one sample of a series: its end time, how long it
// covers (longer for samples merged while the node was offline) and one
// value per column.
type SeriesPoint struct {
	Time          Time       `json:"time"`
	WindowSeconds float64    `json:"windowSeconds"`
	Values        []*float64 `json:"values"`
}

// Node conditions the hub sets from the latest sample.
const (
	NodeMemoryPressure = "MemoryPressure"
	NodeDiskPressure   = "DiskPressure"
)
