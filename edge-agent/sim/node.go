package sim

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// NodeSource is a synthetic board for the metrics collector: a small
// four-core, 2 GiB board with one root filesystem and one network
// interface, a little busy, its readings wandering a few percent from
// sample to sample. It satisfies metrics.NodeSource and reads nothing from
// the machine the simulator runs on.
type NodeSource struct {
	boot    time.Time
	rxBytes uint64
	txBytes uint64
	rnd     *rand.Rand
}

// NewNodeSource returns a synthetic board booted now.
func NewNodeSource() *NodeSource {
	return &NodeSource{boot: time.Now(), rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Sample returns the board's usage at now. The collector calls it from
// one goroutine.
func (n *NodeSource) Sample(ctx context.Context, now time.Time) (wire.NodeSample, error) {
	jitter := func(v float64) float64 { return v * (0.95 + 0.1*n.rnd.Float64()) }
	const total = 2 << 30
	rx, tx := jitter(20_000), jitter(5_000)
	n.rxBytes += uint64(rx * 10)
	n.txBytes += uint64(tx * 10)
	return wire.NodeSample{
		CPU:    wire.CPUSample{Cores: 4, UsageCores: jitter(0.4)},
		Load:   &wire.LoadSample{Load1: jitter(0.5), Load5: 0.45, Load15: 0.4},
		Memory: wire.MemorySample{TotalBytes: total, AvailableBytes: uint64(jitter(0.6 * total))},
		Filesystems: []wire.FilesystemSample{{
			Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4",
			TotalBytes: 16 << 30, UsedBytes: 5 << 30, AvailableBytes: 11 << 30,
		}},
		Networks: []wire.NetworkSample{{
			Interface: "eth0", RxBytesPerSecond: rx, TxBytesPerSecond: tx, RxBytes: n.rxBytes, TxBytes: n.txBytes,
		}},
		UptimeSeconds: uint64(now.Sub(n.boot).Seconds()),
		Processes:     120,
	}, nil
}
