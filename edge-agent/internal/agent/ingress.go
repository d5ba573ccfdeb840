package agent

import (
	"fmt"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/ingress"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// newIngress makes what serves the node's Ingresses, if that is on (nil
// otherwise). It reads the snapshot with the Secrets the agent holds in
// memory, so a TLS Secret counts once it is there.
func (a *Agent) newIngress() (*ingress.Server, error) {
	if !a.cfg.Ingress {
		return nil, nil
	}
	s, err := ingress.New(ingress.Config{
		NodeName:  a.cfg.NodeName,
		HTTPAddr:  a.cfg.IngressHTTPAddr,
		HTTPSAddr: a.cfg.IngressHTTPSAddr,
		Snapshot:  a.desired,
		Event: func(typ api.EventType, reason, message string) {
			a.nodeEvent(typ, reason, message)
		},
		Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("ingress: %w", err)
	}
	return s, nil
}
