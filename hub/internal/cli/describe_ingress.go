package cli

import (
	"context"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/printer"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// ingressRelated fetches what describe shows with an Ingress: each
// backend Service and its Endpoints (a missing one is shown as such, not
// an error), and the events about the Ingress.
func ingressRelated(ctx context.Context, c *client.Client, in *api.Ingress) (printer.Related, error) {
	rel := printer.Related{ShowEvents: true, IngressBackends: map[string]printer.IngressBackend{}}
	svcKind, _ := api.LookupKind(api.KindService)
	epKind, _ := api.LookupKind(api.KindEndpoints)
	var names []string
	if b := in.Spec.DefaultBackend; b != nil && b.Service != nil {
		names = append(names, b.Service.Name)
	}
	for _, r := range in.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service != nil {
				names = append(names, p.Backend.Service.Name)
			}
		}
	}
	for _, name := range names {
		if _, done := rel.IngressBackends[name]; done {
			continue
		}
		var be printer.IngressBackend
		svc, err := c.Get(ctx, svcKind, in.Namespace, name)
		switch {
		case client.IsNotFound(err):
		case err != nil:
			return rel, err
		default:
			be.Service, _ = svc.(*api.Service)
		}
		ep, err := c.Get(ctx, epKind, in.Namespace, name)
		switch {
		case client.IsNotFound(err):
		case err != nil:
			return rel, err
		default:
			be.Endpoints, _ = ep.(*api.Endpoints)
		}
		rel.IngressBackends[name] = be
	}
	var err error
	rel.Events, err = eventsAbout(ctx, c, api.KindIngress, in.Namespace, in.Name)
	return rel, err
}
