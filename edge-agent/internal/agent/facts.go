package agent

import (
	"context"
	"net"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/mem"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/network"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Facts are what the agent announces about its board in its hello.
type Facts struct {
	Labels     map[string]string
	Info       api.NodeSystemInfo
	Capacity   api.ResourceList
	Addresses  []api.NodeAddress
	InternalIP string
	// Devices are the board's devices and their holders (devices.go);
	// their counts are in Capacity.
	Devices []api.NodeDevice
}

// gatherFacts reads the board's facts. Anything it cannot read is left
// empty rather than guessed. The runtime's version is added once the
// runtime is reachable.
func gatherFacts(ctx context.Context, cfg Config) Facts {
	f := Facts{Labels: map[string]string{}}
	for k, v := range cfg.Labels {
		f.Labels[k] = v
	}
	arch := goruntime.GOARCH
	f.Labels[api.LabelHostname] = cfg.NodeName
	f.Labels[api.LabelOS] = goruntime.GOOS
	f.Labels[api.LabelArch] = arch

	f.Info = api.NodeSystemInfo{
		OperatingSystem: goruntime.GOOS,
		Architecture:    arch,
		Variant:         ArchVariant(),
		AgentVersion:    cfg.Version,
	}
	// Only the two facts the hello carries: host.Info would also work out
	// the platform, which runs lsb_release in a child process.
	if v, err := host.KernelVersionWithContext(ctx); err == nil {
		f.Info.KernelVersion = v
	}
	if id, err := host.HostIDWithContext(ctx); err == nil {
		f.Info.MachineID = id
	}
	f.Info.OSImage = osImage()

	f.Capacity = api.ResourceList{
		api.ResourceCPU: api.Quantity(strconv.Itoa(goruntime.NumCPU())),
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		f.Capacity[api.ResourceMemory] = api.Quantity(strconv.FormatUint(vm.Total/1024, 10) + "Ki")
	}

	ip := cfg.NodeIP
	if ip == "" {
		ip = primaryIP()
	}
	if ip != "" {
		f.InternalIP = ip
		f.Addresses = append(f.Addresses, api.NodeAddress{Type: "InternalIP", Address: ip})
	}
	if h, err := os.Hostname(); err == nil {
		f.Addresses = append(f.Addresses, api.NodeAddress{Type: "Hostname", Address: h})
	}
	return f
}

// ArchVariant returns the ARM variant the agent was built for ("v7" for
// GOARM=7), or "" on other architectures.
func ArchVariant() string {
	if goruntime.GOARCH != "arm" {
		return ""
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return "v" + strings.SplitN(s.Value, ",", 2)[0]
			}
		}
	}
	return "v7"
}

// osImage reads PRETTY_NAME from /etc/os-release.
func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// primaryIP returns the first IPv4 address of an up, non-loopback
// interface (the node's address when --node-ip is not given: on a board
// with several, give it).
func primaryIP() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		if iface.Name == network.BridgeName || strings.HasPrefix(iface.Name, "veth") {
			continue // the pods' own
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return ""
}
