package api

// Namespace groups namespaced objects. The hub creates "default" on first
// start.
type Namespace struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Status     NamespaceStatus `json:"status,omitempty"`
}

// NamespaceStatus says whether a namespace is in use.
type NamespaceStatus struct {
	Phase string `json:"phase,omitempty"`
}

// Node is one board running an edge agent. Agents create and update their
// own Node; operators change its labels and spec.unschedulable.
type Node struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       NodeSpec   `json:"spec,omitempty"`
	Status     NodeStatus `json:"status,omitempty"`
}

// NodeSpec is what operators may set on a node, and the pod subnet the
// hub gives it.
type NodeSpec struct {
	Unschedulable bool `json:"unschedulable,omitempty"`
	// PodCIDR is the node's pod subnet, taken from the hub's cluster
	// CIDR; it cannot change once set. PodCIDRs holds it too (Kubernetes
	// lists one subnet per address family).
	PodCIDR  string   `json:"podCIDR,omitempty"`
	PodCIDRs []string `json:"podCIDRs,omitempty"`
}

// NodeReady is the node condition type operators and controllers read.
const NodeReady = "Ready"

// ConditionStatus is a condition's status, as in Kubernetes.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// NodeStatus is what the agent reports about its board and what the hub
// concludes from hearing (or not hearing) it.
type NodeStatus struct {
	Capacity    ResourceList    `json:"capacity,omitempty"`
	Allocatable ResourceList    `json:"allocatable,omitempty"`
	Conditions  []NodeCondition `json:"conditions,omitempty"`
	Addresses   []NodeAddress   `json:"addresses,omitempty"`
	NodeInfo    NodeSystemInfo  `json:"nodeInfo,omitempty"`

	// DesiredRevision is the revision of the latest desired snapshot the hub
	// published for this node; ObservedRevision is the newest one the agent
	// acknowledged. They differ while the node is catching up.
	DesiredRevision  uint64 `json:"desiredRevision,omitempty"`
	ObservedRevision uint64 `json:"observedRevision,omitempty"`
	// LastSeen is when the hub last heard anything from the agent.
	LastSeen Time `json:"lastSeen,omitempty"`
	// Online is the agent's own retained online flag (its last will clears it).
	Online bool `json:"online,omitempty"`
	// Outbox is the agent's queue of undelivered reports, as it last said:
	// how many are queued and how many it ever dropped because it was full.
	Outbox NodeOutbox `json:"outbox,omitempty"`
	// IngestDropped counts the node's messages the hub received and could
	// not use (malformed, over the size limit, naming another node), by
	// reason. With Outbox.Dropped it accounts for everything the node
	// reported that the hub does not hold.
	IngestDropped map[string]uint64 `json:"ingestDropped,omitempty"`
	// Metrics is the node's latest usage sample. The hub fills it in when
	// it serves the node; it is not stored with it.
	Metrics *NodeUsage `json:"metrics,omitempty"`
	// Devices are the board's device nodes (devices.go) and the pods
	// holding them, as the agent last said (Flotilla extension).
	Devices []NodeDevice `json:"devices,omitempty"`
}

// NodeOutbox is the state of a node's store-and-forward queue.
type NodeOutbox struct {
	Queued          int               `json:"queued,omitempty"`
	Dropped         uint64            `json:"dropped,omitempty"`
	DroppedByClass  map[string]uint64 `json:"droppedByClass,omitempty"`
	AppendedByClass map[string]uint64 `json:"appendedByClass,omitempty"`
}

// NodeCondition is one observed aspect of a node's health.
type NodeCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	LastHeartbeatTime  Time            `json:"lastHeartbeatTime,omitempty"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// NodeAddress is one of the node's addresses.
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// NodeSystemInfo are the facts the agent announces about its board.
type NodeSystemInfo struct {
	MachineID               string `json:"machineID,omitempty"`
	KernelVersion           string `json:"kernelVersion,omitempty"`
	OSImage                 string `json:"osImage,omitempty"`
	ContainerRuntimeVersion string `json:"containerRuntimeVersion,omitempty"`
	AgentVersion            string `json:"agentVersion,omitempty"`
	OperatingSystem         string `json:"operatingSystem,omitempty"`
	Architecture            string `json:"architecture,omitempty"`
	Variant                 string `json:"variant,omitempty"`
}

// Condition returns the node's condition of type t, or nil.
func (s *NodeStatus) Condition(t string) *NodeCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// IsReady reports whether the node's Ready condition is True.
func (n *Node) IsReady() bool {
	c := n.Status.Condition(NodeReady)
	return c != nil && c.Status == ConditionTrue
}

// Well-known node labels, set by the agent from its facts.
const (
	LabelHostname = "kubernetes.io/hostname"
	LabelOS       = "kubernetes.io/os"
	LabelArch     = "kubernetes.io/arch"
)

// Pod is a group of containers that run together on one node. Users do not
// write pods; controllers make them and agents report their status.
type Pod struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       PodSpec   `json:"spec,omitempty"`
	Status     PodStatus `json:"status,omitempty"`
}

// RestartPolicy says which exits of a pod's containers restart them.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// PullPolicy says when a container's image is pulled.
type PullPolicy string

// Image pull policies.
const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// PodSpec is the supported subset of Kubernetes' PodSpec.
type PodSpec struct {
	Containers                    []Container       `json:"containers"`
	Volumes                       []Volume          `json:"volumes,omitempty"`
	RestartPolicy                 RestartPolicy     `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds,omitempty"`
	NodeSelector                  map[string]string `json:"nodeSelector,omitempty"`
	NodeName                      string            `json:"nodeName,omitempty"`
	HostNetwork                   bool              `json:"hostNetwork,omitempty"`
	Tolerations                   []Toleration      `json:"tolerations,omitempty"`
	// DNSPolicy and DNSConfig make the pod's resolv.conf (network.go).
	DNSPolicy DNSPolicy     `json:"dnsPolicy,omitempty"`
	DNSConfig *PodDNSConfig `json:"dnsConfig,omitempty"`
	// Hostname and Subdomain name the pod in cluster DNS, as in
	// Kubernetes: when Subdomain names a headless Service of the pod's
	// namespace that selects it, the pod's endpoint is named Hostname
	// (HOSTNAME.SUBDOMAIN.NAMESPACE.svc.DOMAIN) instead of by its dashed
	// address.
	Hostname  string `json:"hostname,omitempty"`
	Subdomain string `json:"subdomain,omitempty"`
	// SecurityContext is what the pod's containers run as and how they
	// are confined, unless a container's own says otherwise (security.go).
	SecurityContext *PodSecurityContext `json:"securityContext,omitempty"`
}

// Toleration lets a pod stay on (or be scheduled to) a node with a matching
// taint. Flotilla uses it for node.kubernetes.io/unreachable and
// node.kubernetes.io/not-ready: tolerationSeconds is how long a Deployment's
// pod stays on a node that is not Ready before it is replaced elsewhere.
type Toleration struct {
	Key               string             `json:"key,omitempty"`
	Operator          TolerationOperator `json:"operator,omitempty"`
	Value             string             `json:"value,omitempty"`
	Effect            TaintEffect        `json:"effect,omitempty"`
	TolerationSeconds *int64             `json:"tolerationSeconds,omitempty"`
}

// Well-known taints, toleration operators and effects.
const (
	TaintNodeUnreachable = "node.kubernetes.io/unreachable"
	TaintNodeNotReady    = "node.kubernetes.io/not-ready"

	TolerationOpExists TolerationOperator = "Exists"
	TolerationOpEqual  TolerationOperator = "Equal"

	TaintEffectNoSchedule       TaintEffect = "NoSchedule"
	TaintEffectPreferNoSchedule TaintEffect = "PreferNoSchedule"
	TaintEffectNoExecute        TaintEffect = "NoExecute"
)

// TolerationOperator is how a toleration matches a taint's value.
type TolerationOperator string

// TaintEffect is what a taint does to pods that do not tolerate it.
type TaintEffect string

// Container is the supported subset of Kubernetes' Container.
type Container struct {
	Name            string               `json:"name"`
	Image           string               `json:"image"`
	ImagePullPolicy PullPolicy           `json:"imagePullPolicy,omitempty"`
	Command         []string             `json:"command,omitempty"`
	Args            []string             `json:"args,omitempty"`
	Env             []EnvVar             `json:"env,omitempty"`
	EnvFrom         []EnvFromSource      `json:"envFrom,omitempty"`
	WorkingDir      string               `json:"workingDir,omitempty"`
	Ports           []ContainerPort      `json:"ports,omitempty"`
	Resources       ResourceRequirements `json:"resources,omitempty"`
	VolumeMounts    []VolumeMount        `json:"volumeMounts,omitempty"`
	LivenessProbe   *Probe               `json:"livenessProbe,omitempty"`
	ReadinessProbe  *Probe               `json:"readinessProbe,omitempty"`
	StartupProbe    *Probe               `json:"startupProbe,omitempty"`
	// SecurityContext confines the container (security.go).
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
}

// Probe is a health check of a container, with Kubernetes' timing fields.
// Zero timing fields take Kubernetes' defaults: timeoutSeconds 1,
// periodSeconds 10, successThreshold 1, failureThreshold 3.
type Probe struct {
	ProbeHandler        `json:",inline"`
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      int32 `json:"timeoutSeconds,omitempty"`
	PeriodSeconds       int32 `json:"periodSeconds,omitempty"`
	SuccessThreshold    int32 `json:"successThreshold,omitempty"`
	FailureThreshold    int32 `json:"failureThreshold,omitempty"`
}

// ProbeHandler says how to probe; exactly one member is set.
type ProbeHandler struct {
	Exec      *ExecAction      `json:"exec,omitempty"`
	HTTPGet   *HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
}

// ExecAction runs a command in the container; exit code 0 is success.
type ExecAction struct {
	Command []string `json:"command,omitempty"`
}

// HTTPGetAction sends a GET; a status from 200 to 399 is success.
type HTTPGetAction struct {
	Path        string       `json:"path,omitempty"`
	Port        IntOrString  `json:"port"`
	Host        string       `json:"host,omitempty"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one header of an HTTP probe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketAction opens a TCP connection; connecting is success.
type TCPSocketAction struct {
	Port IntOrString `json:"port"`
	Host string      `json:"host,omitempty"`
}

// EnvVar is an environment variable: a literal value, or a value taken
// from a key of a Secret or ConfigMap in the pod's namespace.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource names where an environment variable's value comes from;
// exactly one member is set.
type EnvVarSource struct {
	SecretKeyRef    *SecretKeySelector    `json:"secretKeyRef,omitempty"`
	ConfigMapKeyRef *ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name,omitempty"`
}

// SecretKeySelector selects one key of a Secret. With Optional set, a
// missing Secret or key leaves the variable unset instead of failing the
// container.
type SecretKeySelector struct {
	LocalObjectReference `json:",inline"`
	Key                  string `json:"key"`
	Optional             *bool  `json:"optional,omitempty"`
}

// ConfigMapKeySelector selects one key of a ConfigMap.
type ConfigMapKeySelector struct {
	LocalObjectReference `json:",inline"`
	Key                  string `json:"key"`
	Optional             *bool  `json:"optional,omitempty"`
}

// EnvFromSource turns every key of a Secret or ConfigMap into an
// environment variable, each name prefixed with Prefix; exactly one of
// ConfigMapRef and SecretRef is set.
type EnvFromSource struct {
	Prefix       string              `json:"prefix,omitempty"`
	ConfigMapRef *ConfigMapEnvSource `json:"configMapRef,omitempty"`
	SecretRef    *SecretEnvSource    `json:"secretRef,omitempty"`
}

// ConfigMapEnvSource names the ConfigMap of an envFrom entry.
type ConfigMapEnvSource struct {
	LocalObjectReference `json:",inline"`
	Optional             *bool `json:"optional,omitempty"`
}

// SecretEnvSource names the Secret of an envFrom entry.
type SecretEnvSource struct {
	LocalObjectReference `json:",inline"`
	Optional             *bool `json:"optional,omitempty"`
}

// ContainerPort records a port the container listens on: a Service's
// targetPort may name it, and HostPort publishes it on the node.
type ContainerPort struct {
	Name          string   `json:"name,omitempty"`
	ContainerPort int32    `json:"containerPort"`
	HostPort      int32    `json:"hostPort,omitempty"`
	Protocol      Protocol `json:"protocol,omitempty"`
}

// ResourceRequirements are a container's cpu and memory limits (enforced) and
// requests (used for cpu shares and, later, scheduling).
type ResourceRequirements struct {
	Limits   ResourceList `json:"limits,omitempty"`
	Requests ResourceList `json:"requests,omitempty"`
}

// Resource names.
const (
	ResourceCPU    = "cpu"
	ResourceMemory = "memory"
	ResourcePods   = "pods"
)

// ResourceList maps a resource name to a quantity.
type ResourceList map[string]Quantity

// VolumeMount mounts a pod volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Volume is a named volume of a pod; exactly one source is set.
type Volume struct {
	Name      string                 `json:"name"`
	HostPath  *HostPathVolumeSource  `json:"hostPath,omitempty"`
	EmptyDir  *EmptyDirVolumeSource  `json:"emptyDir,omitempty"`
	Secret    *SecretVolumeSource    `json:"secret,omitempty"`
	ConfigMap *ConfigMapVolumeSource `json:"configMap,omitempty"`
}

// SecretVolumeSource mounts a Secret's keys as files: every key, or only
// the ones Items lists, at the paths it gives. DefaultMode (default 0644)
// is the files' permission bits unless an item sets its own.
type SecretVolumeSource struct {
	SecretName  string      `json:"secretName,omitempty"`
	Items       []KeyToPath `json:"items,omitempty"`
	DefaultMode *int32      `json:"defaultMode,omitempty"`
	Optional    *bool       `json:"optional,omitempty"`
}

// ConfigMapVolumeSource mounts a ConfigMap's keys as files, as
// SecretVolumeSource does for a Secret.
type ConfigMapVolumeSource struct {
	LocalObjectReference `json:",inline"`
	Items                []KeyToPath `json:"items,omitempty"`
	DefaultMode          *int32      `json:"defaultMode,omitempty"`
	Optional             *bool       `json:"optional,omitempty"`
}

// KeyToPath maps one key of a Secret or ConfigMap to a file path, relative
// to the volume's mount point, with optional permission bits.
type KeyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	Mode *int32 `json:"mode,omitempty"`
}

// HostPathVolumeSource mounts a path of the board into the pod.
type HostPathVolumeSource struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}

// EmptyDirVolumeSource is a scratch directory that lives as long as the pod
// on its node.
type EmptyDirVolumeSource struct {
	Medium    string    `json:"medium,omitempty"`
	SizeLimit *Quantity `json:"sizeLimit,omitempty"`
}

// Pod phases.
// PodPhase is where a pod is in its life.
type PodPhase string

const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// PodStatus is what the node's agent last reported about the pod.
type PodStatus struct {
	Phase      PodPhase       `json:"phase,omitempty"`
	Conditions []PodCondition `json:"conditions,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Message    string         `json:"message,omitempty"`
	HostIP     string         `json:"hostIP,omitempty"`
	// PodIP is the pod's address (its node's for a host-network pod);
	// PodIPs holds it too, as Kubernetes lists one per address family.
	PodIP             string            `json:"podIP,omitempty"`
	PodIPs            []PodIP           `json:"podIPs,omitempty"`
	StartTime         Time              `json:"startTime,omitempty"`
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	// ObservedRevision is the node snapshot revision the agent was running
	// when it made this report.
	ObservedRevision uint64 `json:"observedRevision,omitempty"`
	// SpecHash is the hash of the spec the agent is running for this pod.
	SpecHash string `json:"specHash,omitempty"`
	// PrePulled is true once the images the hub asked the node to stage
	// for a coming rollout are on the node.
	PrePulled bool `json:"prePulled,omitempty"`
	// Reverted is set when the agent refused the desired spec (it
	// crash-looped or was not Ready in time) and runs its last good spec.
	Reverted *PodRevert `json:"reverted,omitempty"`
	// PullFailure is set while an image the pod needs (for its spec, or
	// to stage for a coming rollout) cannot be pulled; the agent clears it
	// once the image is on the board.
	PullFailure *ImagePullFailure `json:"pullFailure,omitempty"`
}

// ImagePullFailure is why an image could not be pulled, as the agent last
// saw it, so that a rollout can tell a mistyped tag from a flaky link.
type ImagePullFailure struct {
	Image string `json:"image"`
	// Message is the registry's (or the runtime's) error.
	Message string `json:"message"`
	// Permanent is set when retrying cannot help by itself: the registry
	// said the repository or tag does not exist, refused the credentials,
	// or the reference is malformed.
	Permanent bool `json:"permanent,omitempty"`
	// PrePull is set when the failed pull staged an image for a coming
	// rollout: the pod still runs its current spec.
	PrePull bool `json:"prePull,omitempty"`
	// SpecHash is the pod spec the failed pull was for (for a pre-pull,
	// the spec the pod runs).
	SpecHash string `json:"specHash,omitempty"`
	// Since is when this run of failures began; Attempts counts them.
	Since    Time  `json:"since"`
	Attempts int32 `json:"attempts"`
}

// PodRevert says which spec the agent gave up on, and why.
type PodRevert struct {
	FromSpecHash string `json:"fromSpecHash"`
	ToSpecHash   string `json:"toSpecHash"`
	Reason       string `json:"reason"`
}

// PodCondition is one observed aspect of a pod.
type PodCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Pod condition types.
const (
	PodReady = "Ready"
)

// ContainerStatus is the observed state of one container of a pod.
type ContainerStatus struct {
	Name         string         `json:"name"`
	State        ContainerState `json:"state,omitempty"`
	LastState    ContainerState `json:"lastTerminationState,omitempty"`
	Ready        bool           `json:"ready"`
	RestartCount int32          `json:"restartCount"`
	Image        string         `json:"image"`
	ImageID      string         `json:"imageID,omitempty"`
	ContainerID  string         `json:"containerID,omitempty"`
	Started      *bool          `json:"started,omitempty"`
}

// ContainerState holds exactly one of its members.
type ContainerState struct {
	Waiting    *ContainerStateWaiting    `json:"waiting,omitempty"`
	Running    *ContainerStateRunning    `json:"running,omitempty"`
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateWaiting is a container not yet (or not again) running.
type ContainerStateWaiting struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ContainerStateRunning is a running container.
type ContainerStateRunning struct {
	StartedAt Time `json:"startedAt,omitempty"`
}

// ContainerStateTerminated is a container whose process exited.
type ContainerStateTerminated struct {
	ExitCode   int32  `json:"exitCode"`
	Signal     int32  `json:"signal,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	StartedAt  Time   `json:"startedAt,omitempty"`
	FinishedAt Time   `json:"finishedAt,omitempty"`
}

// PodTemplateSpec is the pod a controller stamps out.
type PodTemplateSpec struct {
	ObjectMeta `json:"metadata,omitempty"`
	Spec       PodSpec `json:"spec"`
}

// DaemonSet runs one pod on every node that matches its template's node
// selector.
type DaemonSet struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       DaemonSetSpec   `json:"spec"`
	Status     DaemonSetStatus `json:"status,omitempty"`
}

// DaemonSetSpec is the supported subset of Kubernetes' DaemonSetSpec,
// plus Flotilla's fleet rollout extensions in Rollout.
type DaemonSetSpec struct {
	Selector             *LabelSelector          `json:"selector"`
	Template             PodTemplateSpec         `json:"template"`
	UpdateStrategy       DaemonSetUpdateStrategy `json:"updateStrategy,omitempty"`
	MinReadySeconds      int32                   `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit *int32                  `json:"revisionHistoryLimit,omitempty"`
	// Rollout holds Flotilla's fleet extensions; Kubernetes has no such field.
	Rollout *RolloutSpec `json:"rollout,omitempty"`
}

// Update strategy types.
// StrategyType is how a template change reaches the pods: RollingUpdate
// or OnDelete for a DaemonSet, RollingUpdate or Recreate for a Deployment.
type StrategyType string

const (
	RollingUpdateStrategy StrategyType = "RollingUpdate"
	OnDeleteStrategy      StrategyType = "OnDelete"
	RecreateStrategy      StrategyType = "Recreate"
)

// DaemonSetUpdateStrategy is how a template change reaches the nodes.
type DaemonSetUpdateStrategy struct {
	// Type is RollingUpdate (the default) or OnDelete.
	Type          StrategyType            `json:"type,omitempty"`
	RollingUpdate *RollingUpdateDaemonSet `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDaemonSet bounds a rolling update: at most maxUnavailable
// nodes without an available pod (default 1), at most maxSurge nodes running
// an old and a new pod at once (default 0).
type RollingUpdateDaemonSet struct {
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	MaxSurge       *IntOrString `json:"maxSurge,omitempty"`
}

// RolloutSpec is Flotilla's fleet rollout extension to DaemonSets.
type RolloutSpec struct {
	// Canary updates these nodes first, then pauses.
	Canary *CanarySpec `json:"canary,omitempty"`
	// MaxFailures is how many nodes (or what share) may fail to become
	// Ready within ProgressDeadlineSeconds before the rollout stops.
	MaxFailures *IntOrString `json:"maxFailures,omitempty"`
	// OnFailure is Pause (default) or Rollback.
	OnFailure OnFailurePolicy `json:"onFailure,omitempty"`
	// OfflineNodes is Skip (default: offline nodes do not hold the rollout
	// back; they update when they return) or Wait.
	OfflineNodes OfflinePolicy `json:"offlineNodes,omitempty"`
	// PrePull stages the new images on every target node before the first
	// wave starts.
	PrePull bool `json:"prePull,omitempty"`
	// ProgressDeadlineSeconds is how long a node's new pod may take to
	// become Ready before it counts as failed (default 600).
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
	// Paused stops the rollout where it is (hub rollout pause/resume).
	Paused bool `json:"paused,omitempty"`
}

// CanarySpec picks the canary nodes, by selector or by count.
type CanarySpec struct {
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	Count        *IntOrString      `json:"count,omitempty"`
	// PauseSeconds is how long to wait after the canaries are Ready; unset
	// means wait for `hub rollout resume`.
	PauseSeconds *int32 `json:"pauseSeconds,omitempty"`
}

// OnFailurePolicy is what a rollout does when more nodes failed than it
// tolerates.
type OnFailurePolicy string

// OfflinePolicy says whether offline nodes hold a rollout's completion.
type OfflinePolicy string

// Rollout failure actions and offline-node policies.
const (
	OnFailurePause    OnFailurePolicy = "Pause"
	OnFailureRollback OnFailurePolicy = "Rollback"
	OfflineSkip       OfflinePolicy   = "Skip"
	OfflineWait       OfflinePolicy   = "Wait"
)

// DaemonSetStatus counts the DaemonSet's pods, with Kubernetes' names, and
// carries Flotilla's rollout progress.
type DaemonSetStatus struct {
	ObservedGeneration     int64  `json:"observedGeneration,omitempty"`
	DesiredNumberScheduled int32  `json:"desiredNumberScheduled"`
	CurrentNumberScheduled int32  `json:"currentNumberScheduled"`
	NumberMisscheduled     int32  `json:"numberMisscheduled"`
	NumberReady            int32  `json:"numberReady"`
	UpdatedNumberScheduled int32  `json:"updatedNumberScheduled,omitempty"`
	NumberAvailable        int32  `json:"numberAvailable,omitempty"`
	NumberUnavailable      int32  `json:"numberUnavailable,omitempty"`
	CollisionCount         *int32 `json:"collisionCount,omitempty"`
	// Rollout is the progress of the current rollout (Flotilla extension).
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// RolloutPhase is where a rollout stands.
type RolloutPhase string

// Rollout phases.
const (
	RolloutProgressing RolloutPhase = "Progressing"
	RolloutPaused      RolloutPhase = "Paused"
	RolloutComplete    RolloutPhase = "Complete"
	RolloutFailed      RolloutPhase = "Failed"
	RolloutRolledBack  RolloutPhase = "RolledBack"
	// RolloutDegraded: the rollout did all it will, but some target nodes
	// failed within maxFailures and do not run the revision.
	RolloutDegraded RolloutPhase = "Degraded"
)

// RolloutStatus is where a rollout stands.
type RolloutStatus struct {
	// Revision is the ControllerRevision number being rolled out.
	Revision int64 `json:"revision,omitempty"`
	// TemplateHash identifies that revision's template.
	TemplateHash string       `json:"templateHash,omitempty"`
	Phase        RolloutPhase `json:"phase,omitempty"`
	Message      string       `json:"message,omitempty"`
	// Counts over the target nodes.
	Updated        int32 `json:"updated"`
	Ready          int32 `json:"ready"`
	Unavailable    int32 `json:"unavailable"`
	Failed         int32 `json:"failed"`
	OfflinePending int32 `json:"offlinePending"`
	Total          int32 `json:"total"`
	PrePulled      int32 `json:"prePulled,omitempty"`
	// Updating lists the nodes being updated now; FailedNodes the nodes that
	// failed, with the reason.
	Updating    []string     `json:"updating,omitempty"`
	FailedNodes []NodeReason `json:"failedNodes,omitempty"`
	// OfflinePendingNodes names offline nodes not on the revision yet (at
	// most MaxListedNodes of them; OfflinePending counts them all).
	OfflinePendingNodes []string `json:"offlinePendingNodes,omitempty"`
	// Failure is why this rollout stopped (it failed, or was rolled back),
	// kept until the next rollout begins: while a rollback runs, Message
	// and FailedNodes are about the rollback itself.
	Failure    *RolloutFailure `json:"failure,omitempty"`
	CanaryDone bool            `json:"canaryDone,omitempty"`
	// PausedAt is when an automatic canary pause began.
	PausedAt         Time  `json:"pausedAt,omitempty"`
	StartedAt        Time  `json:"startedAt,omitempty"`
	LastProgressTime Time  `json:"lastProgressTime,omitempty"`
	LastGoodRevision int64 `json:"lastGoodRevision,omitempty"`
}

// MaxListedNodes bounds the node names a rollout status lists.
const MaxListedNodes = 20

// RolloutFailure is why a rollout stopped.
type RolloutFailure struct {
	// Revision is the revision that failed.
	Revision int64  `json:"revision"`
	Message  string `json:"message"`
	// Nodes are the failed nodes with their reasons.
	Nodes []NodeReason `json:"nodes,omitempty"`
	// RolledBackTo is the revision the hub rolled back to, 0 if it did
	// not.
	RolledBackTo int64 `json:"rolledBackTo,omitempty"`
	Time         Time  `json:"time"`
}

// NodeReason names a node and why it is listed.
type NodeReason struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// ControllerRevision is one numbered revision of a DaemonSet's or a
// Deployment's pod template, kept for `hub rollout history` and `undo`.
type ControllerRevision struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	// Data is the revision's pod template.
	Data     PodTemplateSpec `json:"data"`
	Revision int64           `json:"revision"`
}

// Deployment runs replicas of a pod template, scheduled across nodes.
type Deployment struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       DeploymentSpec   `json:"spec"`
	Status     DeploymentStatus `json:"status,omitempty"`
}

// DeploymentSpec is the supported subset of Kubernetes' DeploymentSpec.
type DeploymentSpec struct {
	Replicas                *int32             `json:"replicas,omitempty"`
	Selector                *LabelSelector     `json:"selector"`
	Template                PodTemplateSpec    `json:"template"`
	Strategy                DeploymentStrategy `json:"strategy,omitempty"`
	MinReadySeconds         int32              `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit    *int32             `json:"revisionHistoryLimit,omitempty"`
	Paused                  bool               `json:"paused,omitempty"`
	ProgressDeadlineSeconds *int32             `json:"progressDeadlineSeconds,omitempty"`
}

// DeploymentStrategy is RollingUpdate (the default) or Recreate.
type DeploymentStrategy struct {
	Type          StrategyType             `json:"type,omitempty"`
	RollingUpdate *RollingUpdateDeployment `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDeployment bounds a Deployment's rolling update (defaults
// 25% each).
type RollingUpdateDeployment struct {
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	MaxSurge       *IntOrString `json:"maxSurge,omitempty"`
}

// DeploymentStatus counts a Deployment's pods, with Kubernetes' names.
type DeploymentStatus struct {
	ObservedGeneration  int64                 `json:"observedGeneration,omitempty"`
	Replicas            int32                 `json:"replicas,omitempty"`
	UpdatedReplicas     int32                 `json:"updatedReplicas,omitempty"`
	ReadyReplicas       int32                 `json:"readyReplicas,omitempty"`
	AvailableReplicas   int32                 `json:"availableReplicas,omitempty"`
	UnavailableReplicas int32                 `json:"unavailableReplicas,omitempty"`
	Conditions          []DeploymentCondition `json:"conditions,omitempty"`
	CollisionCount      *int32                `json:"collisionCount,omitempty"`
	// Rollout is the progress of the current rollout (Flotilla extension).
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// DeploymentCondition is one observed aspect of a Deployment
// (Available, Progressing).
type DeploymentCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	LastUpdateTime     Time            `json:"lastUpdateTime,omitempty"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Event records something that happened to an object, as Kubernetes'
// core/v1 Event. Agents report events about pods and nodes; the hub keeps
// them for a while (default 1 h).
type Event struct {
	TypeMeta       `json:",inline"`
	ObjectMeta     `json:"metadata"`
	InvolvedObject ObjectReference `json:"involvedObject"`
	Reason         string          `json:"reason,omitempty"`
	Message        string          `json:"message,omitempty"`
	Source         EventSource     `json:"source,omitempty"`
	FirstTimestamp Time            `json:"firstTimestamp,omitempty"`
	LastTimestamp  Time            `json:"lastTimestamp,omitempty"`
	Count          int32           `json:"count,omitempty"`
	// Type is Normal or Warning.
	Type EventType `json:"type,omitempty"`
}

// EventType is Normal or Warning.
type EventType string

// Event types.
const (
	EventNormal  EventType = "Normal"
	EventWarning EventType = "Warning"
)

// ObjectReference points at an object.
type ObjectReference struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid,omitempty"`
	FieldPath string `json:"fieldPath,omitempty"`
}

// EventSource says who reported an event.
type EventSource struct {
	Component string `json:"component,omitempty"`
	Host      string `json:"host,omitempty"`
}

// IsReady reports whether the pod's Ready condition is True.
// WaitingReason is why the pod's containers are not running as the agent
// last reported it: the reason of the first container waiting for more
// than its creation (CrashLoopBackOff, ImagePullBackOff...), "" if none.
func (s *PodStatus) WaitingReason() string {
	for _, c := range s.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return w.Reason
		}
	}
	return ""
}

func (p *Pod) IsReady() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == PodReady {
			return c.Status == ConditionTrue
		}
	}
	return false
}
