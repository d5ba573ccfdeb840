package cli

import (
	"context"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/printer"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// serviceRelated fetches what describe shows with a Service: its
// Endpoints (none yet is not an error) and the events about it.
func serviceRelated(ctx context.Context, c *client.Client, svc *api.Service) (printer.Related, error) {
	rel := printer.Related{ShowEvents: true}
	epKind, _ := api.LookupKind(api.KindEndpoints)
	ep, err := c.Get(ctx, epKind, svc.Namespace, svc.Name)
	switch {
	case client.IsNotFound(err):
	case err != nil:
		return rel, err
	default:
		rel.Endpoints, _ = ep.(*api.Endpoints)
	}
	rel.Events, err = eventsAbout(ctx, c, api.KindService, svc.Namespace, svc.Name)
	return rel, err
}

// eventsAbout lists the events about one object, in the order they
// happened.
func eventsAbout(ctx context.Context, c *client.Client, kind, namespace, name string) ([]*api.Event, error) {
	evKind, _ := api.LookupKind(api.KindEvent)
	objs, err := c.List(ctx, evKind, namespace, client.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []*api.Event
	for _, o := range objs {
		if e, ok := o.(*api.Event); ok && e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e)
		}
	}
	printer.SortEvents(out)
	return out, nil
}
