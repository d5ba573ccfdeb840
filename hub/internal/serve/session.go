package serve

import (
	"context"

	"github.com/flotilla-edge/flotilla/pkg/link"
)

// hubSession is the hub's MQTT session: broker.InlineSession on the embedded
// broker (no socket, no queue between broker and hub), link.Session on an
// external one.
type hubSession interface {
	Subscribe(filter string, qos byte, h link.Handler)
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
	Run(ctx context.Context) error
}
