package serve

import (
	"context"
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// publisher sends one MQTT message through the hub's session.
type publisher interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
}

// helloAsker returns what ingest calls to ask a node for its hello again,
// on the node's requests topic; a request the broker has not taken in 10 s
// (or by the end of ctx) fails.
func helloAsker(pub publisher) func(ctx context.Context, node string) error {
	return func(ctx context.Context, node string) error {
		b, err := wire.Encode(wire.TypeHelloRequest, node, 0, time.Now(), wire.HelloRequest{})
		if err != nil {
			return fmt.Errorf("encode a hello request for node %s: %w", node, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := pub.Publish(ctx, wire.NodeTopic(node, wire.TopicRequests), 1, false, b); err != nil {
			return fmt.Errorf("publish a hello request for node %s: %w", node, err)
		}
		return nil
	}
}
