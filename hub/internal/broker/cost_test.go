package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestIdleConnectionCost connects N agent-like clients (CONNECT with a
// will, SUBSCRIBE to their desired topic, one 300-byte QoS 1 status) from
// a child process and prints what the broker's process holds per idle
// connection: the growth of HeapInuse and StackInuse after a collection.
// It prints and does not assert. FLOTILLA_BROKER_CONNS sets N (default
// 2,000); -short skips it.
//
//	go test -count=1 -run TestIdleConnectionCost -v ./hub/internal/broker/
func TestIdleConnectionCost(t *testing.T) {
	if testing.Short() {
		t.Skip("connects thousands of clients")
	}
	n := 2000
	if s := os.Getenv("FLOTILLA_BROKER_CONNS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, secure := range []bool{false, true} {
		name := "tcp"
		if secure {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { measureIdle(t, n, secure) })
	}
}

func measureIdle(t *testing.T, n int, secure bool) {
	opts := Options{Listen: "127.0.0.1:0", Logger: quiet}
	var p *testPKI
	if secure {
		p = newTestPKI(t)
		opts.TLS = p.creds.MQTTServerTLS()
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()

	before := settledMem()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClients$")
	cmd.Env = append(os.Environ(), "FLOTILLA_LOAD_ADDR="+b.Addr(), "FLOTILLA_LOAD_N="+strconv.Itoa(n))
	if secure {
		cmd.Env = append(cmd.Env, "FLOTILLA_LOAD_PKI="+p.dir)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	start := time.Now()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "READY") {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatalf("load clients did not get ready: %s", stderr.String())
	}
	took := time.Since(start)
	if got := b.Clients(); got != n {
		t.Fatalf("Clients() = %d, want %d", got, n)
	}
	after := settledMem()
	if f := os.Getenv("FLOTILLA_HEAPPROF"); f != "" {
		w, _ := os.Create(f)
		_ = pprof.WriteHeapProfile(w)
		w.Close()
	}
	heap := float64(after.heap-before.heap) / float64(n)
	stack := float64(after.stack-before.stack) / float64(n)
	t.Logf("%d idle clients (connected in %s): %.0f B heap + %.0f B stack = %.0f B per connection; %.2f goroutines per connection",
		n, took.Round(time.Millisecond), heap, stack, heap+stack, float64(after.goroutines-before.goroutines)/float64(n))
}

type memSample struct {
	heap, stack uint64
	goroutines  int
}

// settledMem collects twice (so stacks shrink) and samples.
func settledMem() memSample {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// TestLoadClients is the child process of TestIdleConnectionCost: it
// holds the connections until its stdin closes.
func TestLoadClients(t *testing.T) {
	addr := os.Getenv("FLOTILLA_LOAD_ADDR")
	if addr == "" {
		t.Skip("the child of TestIdleConnectionCost")
	}
	n, _ := strconv.Atoi(os.Getenv("FLOTILLA_LOAD_N"))
	var conf *tls.Config
	if dir := os.Getenv("FLOTILLA_LOAD_PKI"); dir != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "hub-client.crt"), filepath.Join(dir, "hub-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		conf = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"}
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := loadClient(addr, conf, i)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fmt.Println("READY")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.Close()
	}
}

// loadClient connects as agent i would: CONNECT with a will, SUBSCRIBE
// to its desired topic, a 300-byte status at QoS 1.
func loadClient(addr string, conf *tls.Config, i int) (net.Conn, error) {
	var c net.Conn
	var err error
	if conf != nil {
		c, err = tls.Dial("tcp", addr, conf)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	node := fmt.Sprintf("n%d", i)
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, 300
	cp.ClientIdentifier = "flotilla-agent-" + node
	cp.WillFlag, cp.WillQos, cp.WillRetain = true, 1, true
	cp.WillTopic, cp.WillMessage = "flotilla/v1/nodes/"+node+"/online", []byte(`{"online":false}`)
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{"flotilla/v1/nodes/" + node + "/desired"}, []byte{1}
	pp := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pp.Qos, pp.MessageID, pp.TopicName, pp.Payload = 1, 2, "flotilla/v1/nodes/"+node+"/status", bytes.Repeat([]byte("x"), 300)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	for _, step := range []struct {
		out  packets.ControlPacket
		want byte
	}{{cp, packets.Connack}, {sp, packets.Suback}, {pp, packets.Puback}} {
		if err := step.out.Write(c); err != nil {
			return nil, err
		}
		in, err := packets.ReadPacket(c)
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		if got := packetType(in); got != step.want {
			return nil, fmt.Errorf("client %d: got %v, want type %d", i, in, step.want)
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func packetType(p packets.ControlPacket) byte {
	switch p := p.(type) {
	case *packets.ConnackPacket:
		if p.ReturnCode != 0 {
			return 0
		}
		return packets.Connack
	case *packets.SubackPacket:
		return packets.Suback
	case *packets.PubackPacket:
		return packets.Puback
	}
	return 0
}
