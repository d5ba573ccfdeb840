package arm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// boardProfile is one arm/boards/*.yaml.
type boardProfile struct {
	Board    string `json:"board"`
	CPU      string `json:"cpu"`
	Memory   string `json:"memory"`
	OS       string `json:"os"`
	Build    string `json:"build"`
	Platform string `json:"platform"`
	Kernel   struct {
		Cgroups     string `json:"cgroups"`
		CmdlineFile string `json:"cmdline_file"`
		CmdlineAdd  string `json:"cmdline_add"`
		Reboot      bool   `json:"reboot"`
	} `json:"kernel"`
	Containerd struct {
		Install string `json:"install"`
		Package string `json:"package"`
	} `json:"containerd"`
	Images  string   `json:"images"`
	Gotchas []string `json:"gotchas"`
	// Devices are the agent's device classes on the board (edge-agent
	// --board-profile); edge-agent/internal/devices checks them.
	Devices map[string][]string `json:"devices,omitempty"`
}

// TestBoardProfiles checks every board profile: strictly shaped, complete,
// naming a build that make cross produces and the platform that build
// pulls, and listed in arm/README.md. The boards the issue names must be
// there.
func TestBoardProfiles(t *testing.T) {
	buildPlatform := map[string]string{
		"edge-agent-linux-amd64": "linux/amd64",
		"edge-agent-linux-arm64": "linux/arm64",
		"edge-agent-linux-armv7": "linux/arm/v7",
		"edge-agent-linux-armv6": "linux/arm/v6",
	}
	files, err := filepath.Glob(filepath.Join(env.root, "arm", "boards", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no board profiles: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join(env.root, "arm", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	has32, has64 := false, false
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p boardProfile
		if err := yaml.UnmarshalStrict(raw, &p); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		for field, v := range map[string]string{"board": p.Board, "cpu": p.CPU, "memory": p.Memory, "os": p.OS, "build": p.Build,
			"platform": p.Platform, "kernel.cgroups": p.Kernel.Cgroups, "kernel.cmdline_file": p.Kernel.CmdlineFile,
			"kernel.cmdline_add": p.Kernel.CmdlineAdd, "containerd.install": p.Containerd.Install, "containerd.package": p.Containerd.Package, "images": p.Images} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: %s is empty", filepath.Base(f), field)
			}
		}
		if len(p.Gotchas) == 0 {
			t.Errorf("%s: no gotchas", filepath.Base(f))
		}
		plat, ok := buildPlatform[p.Build]
		if !ok {
			t.Errorf("%s: build %q is not one make cross produces", filepath.Base(f), p.Build)
		} else if plat != p.Platform {
			t.Errorf("%s: platform %q, but %s pulls %s", filepath.Base(f), p.Platform, p.Build, plat)
		}
		if !strings.Contains(p.Containerd.Install, "containerd") {
			t.Errorf("%s: containerd.install does not install containerd", filepath.Base(f))
		}
		if !strings.Contains(string(readme), "boards/"+filepath.Base(f)) {
			t.Errorf("arm/README.md does not link boards/%s", filepath.Base(f))
		}
		all.WriteString(p.Board + " | " + p.OS + " | " + p.Build + "\n")
		if strings.Contains(p.Board, "Raspberry Pi") && strings.Contains(p.OS, "32-bit") && p.Build == "edge-agent-linux-armv7" {
			has32 = true
		}
		if strings.Contains(p.Board, "Raspberry Pi") && strings.Contains(p.OS, "64-bit") && p.Build == "edge-agent-linux-arm64" {
			has64 = true
		}
	}
	// The boards the issue asks for, on 32- and 64-bit OSes.
	if !has32 || !has64 {
		t.Errorf("want Raspberry Pi profiles for a 32-bit OS (armv7) and a 64-bit OS (arm64): 32-bit %v, 64-bit %v", has32, has64)
	}
	for _, want := range []string{"Raspberry Pi 3", "Raspberry Pi 4", "Raspberry Pi 5", "Raspberry Pi Zero", "Jetson", "BeagleBone Black", "Generic arm64",
		"edge-agent-linux-armv6"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no board profile for %q in:\n%s", want, all.String())
		}
	}
}
