package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadNetworkFlags: overlapping CIDRs, a mask size that
// does not fit and a backwards port range stop hub serve before it
// touches its data directory, each named with why.
func TestServeRefusesBadNetworkFlags(t *testing.T) {
	isolate(t)
	data := filepath.Join(t.TempDir(), "data")
	_, _, err := run(NewRootCommand(BuildInfo{}), "serve", "--insecure", "--data-dir", data,
		"--service-cidr", "10.42.128.0/17", "--node-cidr-mask-size", "12", "--service-node-port-range", "32767-30000")
	if err == nil {
		t.Fatal("serve started")
	}
	for _, want := range []string{
		"the network flags are not usable:",
		"--node-cidr-mask-size 12 is smaller than the prefix length of --cluster-cidr 10.42.0.0/16 (16)",
		"--service-cidr 10.42.128.0/17 overlaps --cluster-cidr 10.42.0.0/16",
		`--service-node-port-range "32767-30000": the range ends at 30000, before it starts at 32767`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data directory was touched: %v", err)
	}
}
