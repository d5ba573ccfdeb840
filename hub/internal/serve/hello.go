package serve

import (
	"context"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// publisher sends one MQTT message through the hub's session.
type publisher interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
}

// helloAsker returns what ingest calls to ask a node for its hello again,
// on the node's requests topic.
func helloAsker(pub publisher) func(node string) error {
	return func(node string) error {
		b, err := wire.Encode(wire.TypeHelloRequest, node, 0, time.Now(), wire.HelloRequest{})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return pub.Publish(ctx, wire.NodeTopic(node, wire.TopicRequests), 1, false, b)
	}
}
