package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The iptables benchmarks measure what the package documentation says
// of iptables, on the same site: the rules kube-proxy's iptables mode
// writes for the same Services (a KUBE-SERVICES rule per Service port, a
// statistic rule per endpoint, a DNAT chain per endpoint), loaded with
// iptables-legacy-restore and iptables-nft-restore (Debian 12's default
// iptables).
//
//	go test -run '^$' -bench BenchmarkIptablesRestore -benchtime 20x ./edge-agent/internal/proxy/
//	go test -run '^$' -bench BenchmarkIptablesConnect -benchtime 5000x -count 5 ./edge-agent/internal/proxy/

type iptablesCase struct {
	tool       string // iptables-legacy-restore, iptables-nft-restore
	full       []byte // 1,000 Services × 10 endpoints and the target Service last
	onlyTarget []byte
	change     [2][]byte // one endpoint of one Service out, and back
}

func iptablesCases(b *testing.B) []iptablesCase {
	needRoot(b)
	svcs := manyServices(1000, 10)
	target := wire.Service{
		Namespace: "default", Name: "target", ClusterIP: "198.19.200.10",
		Ports:     []wire.ServicePort{{Name: "hello", Protocol: "TCP", Port: 82, TargetPort: "8083"}},
		Endpoints: []wire.Endpoint{{IP: podIPs[1], Node: "node", Ready: true}},
	}
	const changed = 501
	var cases []iptablesCase
	for _, tool := range []string{"iptables-legacy-restore", "iptables-nft-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Logf("%s not installed (Debian: apt-get install iptables): skipped", tool)
			continue
		}
		cases = append(cases, iptablesCase{
			tool:       tool,
			full:       kubeProxyRules(append(svcs, target), -1),
			onlyTarget: kubeProxyRules([]wire.Service{target}, -1),
			change:     [2][]byte{kubeProxyChange(svcs[changed], changed, 3), kubeProxyChange(svcs[changed], changed, -1)},
		})
	}
	if len(cases) == 0 {
		b.Skip("no iptables-restore installed")
	}
	return cases
}

func (c iptablesCase) restore(b *testing.B, ns *netns, rules []byte, args ...string) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name, c.tool}, args...)...)
	cmd.Stdin = bytes.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v: %s", c.tool, err, out)
	}
}

// BenchmarkIptablesRestore times loading 1,000 Services × 10 endpoints
// and a one-endpoint change as kube-proxy sends it (the Service's chain
// rewritten, the endpoint's chain deleted, with --noflush). Each op
// includes starting the restore command, as kube-proxy does per sync.
func BenchmarkIptablesRestore(b *testing.B) {
	for _, c := range iptablesCases(b) {
		node := newNetns(b, fmt.Sprintf("fpxi%d-%d", os.Getpid()%100000, siteSeqNext()))
		name := strings.TrimSuffix(c.tool, "-restore")
		b.Run("load-full/"+name, func(b *testing.B) {
			for b.Loop() {
				c.restore(b, node, c.full)
			}
		})
		b.Run("one-endpoint/"+name, func(b *testing.B) {
			c.restore(b, node, c.full)
			i := 0
			for b.Loop() {
				c.restore(b, node, c.change[i%2], "--noflush")
				i++
			}
		})
	}
}

// BenchmarkIptablesConnect times a new connection through a ClusterIP
// whose KUBE-SERVICES rule comes after 1,000 others, against the same
// with that Service alone.
func BenchmarkIptablesConnect(b *testing.B) {
	for _, c := range iptablesCases(b) {
		s := newSite(b)
		benchServers(b, s.pods[1], podIPs[1])
		name := strings.TrimSuffix(c.tool, "-restore")
		b.Run(name+"/1-service", func(b *testing.B) {
			c.restore(b, s.node, c.onlyTarget)
			connectBench(b, s.pods[0], "198.19.200.10:82")
		})
		b.Run(name+"/1000-services", func(b *testing.B) {
			c.restore(b, s.node, c.full)
			connectBench(b, s.pods[0], "198.19.200.10:82")
		})
	}
}

// connectBench opens b.N connections from ns to addr, each until the
// server's line and close.
func connectBench(b *testing.B, ns *netns, addr string) {
	buf := make([]byte, 16)
	b.ResetTimer()
	err := inNetns(ns, func() error {
		for i := 0; i < b.N; i++ {
			c, err := net.DialTimeout("tcp4", addr, ioTimeout)
			if err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
			_, err = io.ReadAtLeast(c, buf, 3)
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// kubeProxyRules is an iptables-restore input for the nat table in the
// shape kube-proxy's iptables mode gives it.
func kubeProxyRules(svcs []wire.Service, skipEP int) []byte {
	var chains, rules bytes.Buffer
	chains.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n")
	rules.WriteString("-A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n-A POSTROUTING -j KUBE-POSTROUTING\n")
	rules.WriteString("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n")
	rules.WriteString("-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n-A KUBE-POSTROUTING -j MASQUERADE\n")
	rules.WriteString("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	for i, svc := range svcs {
		fmt.Fprintf(&rules, "-A KUBE-SERVICES -d %s/32 -p tcp -m tcp --dport %d -j KUBE-SVC-%d\n", svc.ClusterIP, svc.Ports[0].Port, i)
		svcChain(&chains, &rules, svc, i, skipEP)
	}
	rules.WriteString("COMMIT\n")
	chains.Write(rules.Bytes())
	return chains.Bytes()
}

// svcChain writes one Service's chain and its endpoints' chains, leaving
// out endpoint skipEP.
func svcChain(chains, rules *bytes.Buffer, svc wire.Service, i, skipEP int) {
	fmt.Fprintf(chains, ":KUBE-SVC-%d - [0:0]\n", i)
	var eps []int
	for j := range svc.Endpoints {
		if j != skipEP {
			eps = append(eps, j)
		}
	}
	for k, j := range eps {
		fmt.Fprintf(chains, ":KUBE-SEP-%d-%d - [0:0]\n", i, j)
		if left := len(eps) - k; left > 1 {
			fmt.Fprintf(rules, "-A KUBE-SVC-%d -m statistic --mode random --probability %.11f -j KUBE-SEP-%d-%d\n", i, 1/float64(left), i, j)
		} else {
			fmt.Fprintf(rules, "-A KUBE-SVC-%d -j KUBE-SEP-%d-%d\n", i, i, j)
		}
		ep := svc.Endpoints[j]
		port := 8080
		if n, err := fmt.Sscan(svc.Ports[0].TargetPort, &port); n != 1 || err != nil {
			port = 8080
		}
		fmt.Fprintf(rules, "-A KUBE-SEP-%d-%d -s %s/32 -j KUBE-MARK-MASQ\n", i, j, ep.IP)
		fmt.Fprintf(rules, "-A KUBE-SEP-%d-%d -p tcp -m tcp -j DNAT --to-destination %s:%d\n", i, j, ep.IP, port)
	}
}

// kubeProxyChange is kube-proxy's partial update for one Service whose
// endpoint skipEP left (or, with -1, came back): its chain is declared
// (which flushes it under --noflush) and rewritten, and the endpoint's
// chain is deleted or made again.
func kubeProxyChange(svc wire.Service, i, skipEP int) []byte {
	var chains, rules bytes.Buffer
	chains.WriteString("*nat\n")
	svcChain(&chains, &rules, svc, i, skipEP)
	if skipEP >= 0 {
		// Declared to flush it (it must be empty to go), then deleted.
		fmt.Fprintf(&chains, ":KUBE-SEP-%d-%d - [0:0]\n", i, skipEP)
		fmt.Fprintf(&rules, "-X KUBE-SEP-%d-%d\n", i, skipEP)
	}
	rules.WriteString("COMMIT\n")
	chains.Write(rules.Bytes())
	return chains.Bytes()
}
