package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestRevokedAgentSaysItIsRefused: after `hub node revoke`, the hub's
// broker cuts the agent's connection and refuses every reconnect with
// CONNACK "not authorised". The agent must say so at warn, once per
// attempt (each a step of its growing back-off), rather than log the lost
// connection and then nothing.
func TestRevokedAgentSaysItIsRefused(t *testing.T) {
	h := startHub(t, hubOptions{tls: true})
	a := startEnrolledAgent(t, h)
	if out := h.mustCLI("node", "revoke", a.node); !strings.Contains(out, "revoked") {
		t.Fatalf("hub node revoke: %q", out)
	}
	const refusal = "broker refused the connection"
	eventually(t, 60*time.Second, "the agent logs three refusals", func() error {
		if n := logCount(t, a.logPath, refusal); n < 3 {
			return fmt.Errorf("%d refusals logged", n)
		}
		return nil
	})
	warned := logCount(t, a.logPath, "level=WARN msg=\""+refusal)
	saidWhy := logCount(t, a.logPath, "not Authorized")
	refusedByHub := 0
	for _, line := range strings.Split(readFile(t, h.logPath), "\n") {
		if strings.Contains(line, `msg="client refused"`) && strings.Contains(line, "client="+wire.AgentClientID(a.node)+" ") {
			refusedByHub++
		}
	}
	figure("revoked agent: %d refusals logged by the agent, %d by the hub", warned, refusedByHub)
	if warned < 3 || saidWhy < warned {
		t.Fatalf("%d refusal warnings, %d saying the broker's reason", warned, saidWhy)
	}
	// Once per attempt: the hub refused as often as the agent said so
	// (give or take the attempt under way while the logs were read).
	if d := refusedByHub - warned; d < -1 || d > 1 {
		t.Fatalf("the hub refused %d times, the agent logged %d refusals", refusedByHub, warned)
	}
	if n := logCount(t, a.logPath, "connection lost"); n != 1 {
		t.Fatalf("%d lost connections logged, want the one the revocation cut", n)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
