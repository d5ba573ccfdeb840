// Package preflight checks that a board can run the edge agent, the way
// `k3s check-config` does: kernel features and mounts (cgroups, overlayfs,
// namespaces), containerd and runc, what the pod network needs (the CNI
// plugins, br_netfilter, IPv4 forwarding, iptables for hostPorts), the
// state directory's free space and the clock. Each check gives one PASS, WARN or FAIL line; a FAIL means the
// agent cannot work there. Every check reads the machine through a Host, so
// tests run them against a fake filesystem root and fake daemons.
package preflight

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status int

// Outcomes, from best to worst.
const (
	Pass Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Warn:
		return "WARN"
	case Fail:
		return "FAIL"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is the outcome of one check, with what it found or what to do.
type Result struct {
	Name   string
	Status Status
	Detail string
}

// Thresholds of the state directory's free space.
const (
	// WarnFreeBytes: below this, images and logs will soon fill the disk.
	WarnFreeBytes = 1 << 30
	// FailFreeBytes: below this, the agent's store cannot be trusted to
	// write.
	FailFreeBytes = 100 << 20
)

// MinYear is the earliest plausible clock: a board without a real-time
// clock boots in 1970 until NTP sets it, and TLS certificates are then
// "not yet valid".
const MinYear = 2024

// DefaultTimeout bounds each check that talks to a daemon or runs a
// command.
const DefaultTimeout = 5 * time.Second

// Config is what the agent would use, so the checks look at the same
// socket, snapshotter and directory.
type Config struct {
	// StateDir is the agent's --state-dir.
	StateDir string
	// ContainerdSocket is the agent's --containerd-socket.
	ContainerdSocket string
	// Snapshotter is the agent's --snapshotter ("overlayfs", "native"...).
	Snapshotter string
	// Platform is what the agent pulls images for, "linux/arm/v7".
	Platform string
	// CNIBinDir is the agent's --cni-bin-dir (default /usr/lib/cni).
	CNIBinDir string
	// Timeout bounds each check that waits on something (default
	// DefaultTimeout).
	Timeout time.Duration
}

// Run runs every check and returns their results in a fixed order.
func Run(ctx context.Context, cfg Config, h Host) Report {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = "overlayfs"
	}
	if cfg.CNIBinDir == "" {
		cfg.CNIBinDir = "/usr/lib/cni"
	}
	h = h.withDefaults()
	c := checker{cfg: cfg, h: h}
	var r Report
	r.add(c.privileges())
	r.add(c.architecture())
	r.add(c.kernel())
	r.add(c.cgroups()...)
	r.add(c.snapshotter())
	r.add(c.namespaces())
	r.add(c.seccomp())
	r.add(c.containerd(ctx))
	r.add(c.runc(ctx))
	r.add(c.networkChecks()...)
	r.add(c.stateDir())
	r.add(c.clock())
	return r
}

// Report is the list of results.
type Report struct {
	Results []Result
}

func (r *Report) add(rs ...Result) { r.Results = append(r.Results, rs...) }

// Failed reports whether a required check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status == Fail {
			return true
		}
	}
	return false
}

// Count returns how many results have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// Get returns the result named name, or false.
func (r Report) Get(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// Write prints one line per check and a closing verdict.
func (r Report) Write(w io.Writer) error {
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Name))
	}
	var b strings.Builder
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", res.Status, width, res.Name, res.Detail)
	}
	verdict := "ready: the agent can run here"
	if r.Failed() {
		verdict = "not ready: fix the FAIL lines above"
	}
	fmt.Fprintf(&b, "\n%s (%d PASS, %d WARN, %d FAIL)\n", verdict, r.Count(Pass), r.Count(Warn), r.Count(Fail))
	_, err := io.WriteString(w, b.String())
	return err
}
