package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/printer"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

type getOptions struct {
	allNamespaces bool
	selector      string
	fieldSelector string
	output        string
	showLabels    bool
	noHeaders     bool
	watch         bool
	forObject     string
}

func newGetCommand(e *env) *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get (KIND [NAME...] | KIND/NAME...)",
		Short: "List objects: nodes, pods, daemonsets, deployments, services, endpoints, horizontalpodautoscalers, controllerrevisions, namespaces",
		Example: `  hub get nodes -o wide
  hub get pods -A
  hub get ds sensor -o yaml
  hub get pods -l app=sensor`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch o.output {
			case "", "wide", printer.FormatYAML, printer.FormatJSON, printer.FormatName:
			default:
				return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: json,name,wide,yaml", o.output)
			}
			if o.selector != "" {
				if _, err := api.ParseSelector(o.selector); err != nil {
					return err
				}
			}
			targets, err := parseTargets(args)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if o.forObject != "" && (len(targets) != 1 || targets[0].kind.Kind != api.KindEvent) {
				return errors.New("--for works with events only: hub get events --for pod/NAME")
			}
			if o.watch {
				return watchGet(ctx, e, c, o, targets)
			}
			return runGet(ctx, e, c, o, targets)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	f.StringVarP(&o.selector, "selector", "l", "", "label selector (a=b, a!=b, a in (x,y), !a)")
	f.StringVar(&o.fieldSelector, "field-selector", "", "field selector (spec.nodeName=NODE, metadata.name=NAME)")
	f.StringVarP(&o.output, "output", "o", "", "output format: wide, yaml, json, name")
	f.BoolVar(&o.showLabels, "show-labels", false, "show labels as the last column")
	f.BoolVar(&o.noHeaders, "no-headers", false, "do not print headers")
	f.BoolVarP(&o.watch, "watch", "w", false, "after listing, keep printing objects as they change (until Ctrl-C)")
	f.StringVar(&o.forObject, "for", "", "events only: those about KIND/NAME (pod/web-1, node/edge-1)")
	return cmd
}

func runGet(ctx context.Context, e *env, c *client.Client, o *getOptions, targets []target) error {
	var failed error
	var all []api.Object
	structured := o.output == printer.FormatYAML || o.output == printer.FormatJSON || o.output == printer.FormatName
	single := len(targets) == 1 && len(targets[0].names) == 1
	for i, t := range targets {
		ns := namespaceFor(t.kind, e.ns())
		if o.allNamespaces && len(t.names) == 0 {
			ns = ""
		}
		var objs []api.Object
		if len(t.names) == 0 {
			list, err := c.List(ctx, t.kind, ns, client.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector})
			if err != nil {
				return err
			}
			objs = list
			if t.kind.Kind == api.KindEvent {
				if objs, err = filterEvents(objs, o.forObject); err != nil {
					return err
				}
			}
		} else {
			for _, name := range t.names {
				obj, err := c.Get(ctx, t.kind, ns, name)
				if err != nil {
					fmt.Fprintln(e.errOut, err)
					failed = errSilent
					continue
				}
				objs = append(objs, obj)
			}
		}
		if structured {
			all = append(all, objs...)
			continue
		}
		if len(objs) == 0 {
			if len(t.names) == 0 && len(targets) == 1 {
				nsForMsg := ns
				if !t.kind.Namespaced {
					nsForMsg = ""
				}
				fmt.Fprintln(e.errOut, printer.NoResourcesMessage(nsForMsg, o.allNamespaces))
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(e.out)
		}
		opts := printer.Options{
			Wide: o.output == "wide", AllNamespaces: o.allNamespaces && t.kind.Namespaced,
			ShowLabels: o.showLabels, NoHeaders: o.noHeaders, Now: time.Now(),
			WithKind: severalKinds(targets),
		}
		if err := printer.PrintTable(e.out, t.kind.Kind, objs, opts); err != nil && !errors.Is(err, printer.ErrNoResources) {
			return err
		}
	}
	if structured && !(len(all) == 0 && failed != nil) {
		if single && len(all) == 1 {
			if err := printer.PrintObjects(e.out, o.output, all); err != nil {
				return err
			}
		} else if err := printer.PrintList(e.out, o.output, all); err != nil {
			return err
		}
	}
	return failed
}

// severalKinds reports whether a get lists more than one kind, when
// kubectl prints each name with its kind (service/web).
func severalKinds(targets []target) bool {
	for _, t := range targets[1:] {
		if t.kind.Kind != targets[0].kind.Kind {
			return true
		}
	}
	return false
}

func newDescribeCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe (KIND NAME | KIND/NAME)",
		Short: "Show an object in detail, with the pods that belong to it",
		Example: `  hub describe node edge-1
  hub describe ds/sensor`,
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := parseTargets(args)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			first := true
			for _, t := range targets {
				ns := namespaceFor(t.kind, e.ns())
				names := t.names
				if len(names) == 0 {
					objs, err := c.List(ctx, t.kind, ns, client.ListOptions{})
					if err != nil {
						return err
					}
					for _, o := range objs {
						names = append(names, o.GetObjectMeta().Name)
					}
				}
				for _, name := range names {
					obj, err := c.Get(ctx, t.kind, ns, name)
					if err != nil {
						return err
					}
					rel, err := related(ctx, c, obj)
					if err != nil {
						return err
					}
					if !first {
						fmt.Fprintln(e.out)
					}
					first = false
					if err := printer.Describe(e.out, obj, rel, time.Now()); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	return cmd
}

// related fetches what describe shows with an object: the pods on a node,
// or the pods a DaemonSet owns.
func related(ctx context.Context, c *client.Client, obj api.Object) (printer.Related, error) {
	podKind, _ := api.LookupKind(api.KindPod)
	var rel printer.Related
	switch o := obj.(type) {
	case *api.Node:
		pods, err := c.List(ctx, podKind, "", client.ListOptions{FieldSelector: "spec.nodeName=" + o.Name})
		if err != nil {
			return rel, err
		}
		rel.Pods = asPods(pods)
		// Usage is optional: a hub without recent samples has none.
		rel.PodMetrics, _ = c.PodMetrics(ctx, "", o.Name)
	case *api.Service:
		return serviceRelated(ctx, c, o)
	case *api.Ingress:
		return ingressRelated(ctx, c, o)
	case *api.IngressClass:
		rel.ShowEvents = true
		var err error
		rel.Events, err = eventsAbout(ctx, c, api.KindIngressClass, "", o.Name)
		return rel, err
	case *api.Endpoints:
		rel.ShowEvents = true
		var err error
		rel.Events, err = eventsAbout(ctx, c, api.KindEndpoints, o.Namespace, o.Name)
		return rel, err
	case *api.HorizontalPodAutoscaler:
		rel.ShowEvents = true
		var err error
		rel.Events, err = eventsAbout(ctx, c, api.KindHorizontalPodAutoscaler, o.Namespace, o.Name)
		return rel, err
	case *api.DaemonSet, *api.Deployment:
		m := obj.GetObjectMeta()
		pods, err := c.List(ctx, podKind, m.Namespace, client.ListOptions{})
		if err != nil {
			return rel, err
		}
		for _, p := range asPods(pods) {
			if p.IsControlledBy(m.UID) {
				rel.Pods = append(rel.Pods, p)
			}
		}
	}
	return rel, nil
}

func asPods(objs []api.Object) []*api.Pod {
	out := make([]*api.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*api.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

func newLabelCommand(e *env) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "label (KIND NAME | KIND/NAME) KEY=VALUE... KEY-...",
		Short: "Add, change or remove labels (KEY- removes KEY)",
		Example: `  hub label node edge-1 site=north
  hub label node edge-1 site-`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var kindArgs, labelArgs []string
			for i, a := range args {
				if strings.Contains(a, "=") || strings.HasSuffix(a, "-") && i > 0 {
					labelArgs = args[i:]
					break
				}
				kindArgs = append(kindArgs, a)
			}
			if len(labelArgs) == 0 {
				return errors.New("at least one label update is required (KEY=VALUE or KEY-)")
			}
			targets, err := parseTargets(kindArgs)
			if err != nil {
				return err
			}
			set, remove, err := parseLabelArgs(labelArgs)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			for _, t := range targets {
				if len(t.names) == 0 {
					return errors.New("resource(s) were provided, but no name was specified")
				}
				ns := namespaceFor(t.kind, e.ns())
				for _, name := range t.names {
					obj, err := c.Get(ctx, t.kind, ns, name)
					if err != nil {
						return err
					}
					current := obj.GetObjectMeta().Labels
					labels := map[string]any{}
					for k, v := range set {
						if old, ok := current[k]; ok && old != v && !overwrite {
							return fmt.Errorf("'%s' already has a value (%s), and --overwrite is false", k, old)
						}
						labels[k] = v
					}
					for _, k := range remove {
						if _, ok := current[k]; !ok {
							fmt.Fprintf(e.errOut, "label %q not found.\n", k)
						}
						labels[k] = nil
					}
					patch := map[string]any{"metadata": map[string]any{"labels": labels}}
					if _, err := c.Patch(ctx, t.kind, ns, name, patch); err != nil {
						return err
					}
					verb := "labeled"
					if len(set) == 0 {
						verb = "unlabeled"
					}
					fmt.Fprintf(e.out, "%s %s\n", printer.ObjectName(t.kind, name), verb)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "allow changing the value of an existing label")
	return cmd
}

// parseLabelArgs reads KEY=VALUE and KEY- arguments.
func parseLabelArgs(args []string) (map[string]string, []string, error) {
	set := map[string]string{}
	var remove []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if err := api.ValidateLabelKey(k); err != nil {
				return nil, nil, err
			}
			if err := api.ValidateLabelValue(v); err != nil {
				return nil, nil, err
			}
			set[k] = v
			continue
		}
		if k, ok := strings.CutSuffix(a, "-"); ok {
			if err := api.ValidateLabelKey(k); err != nil {
				return nil, nil, err
			}
			remove = append(remove, k)
			continue
		}
		return nil, nil, fmt.Errorf("invalid label update %q: want KEY=VALUE or KEY-", a)
	}
	sort.Strings(remove)
	return set, remove, nil
}

// filterEvents keeps the events about forObject (KIND/NAME; all if empty)
// and orders them as they happened.
func filterEvents(objs []api.Object, forObject string) ([]api.Object, error) {
	var kind, name string
	if forObject != "" {
		k, n, ok := strings.Cut(forObject, "/")
		if !ok || n == "" {
			return nil, fmt.Errorf("--for %q: want KIND/NAME, for example pod/web-1", forObject)
		}
		info, err := api.LookupResource(k)
		if err != nil {
			return nil, err
		}
		kind, name = info.Kind, n
	}
	var evs []*api.Event
	for _, o := range objs {
		e, ok := o.(*api.Event)
		if !ok {
			continue
		}
		if kind != "" && (e.InvolvedObject.Kind != kind || e.InvolvedObject.Name != name) {
			continue
		}
		evs = append(evs, e)
	}
	printer.SortEvents(evs)
	out := make([]api.Object, len(evs))
	for i, e := range evs {
		out[i] = e
	}
	return out, nil
}

// eventReplay is how many of the events there are `get events -w` prints
// before it follows new ones.
const eventReplay = 100

// watchGet lists once, then polls the hub every second and prints each
// object again when its resourceVersion changes, as `kubectl get -w` does.
func watchGet(ctx context.Context, e *env, c *client.Client, o *getOptions, targets []target) error {
	if len(targets) != 1 {
		return errors.New("--watch takes one kind")
	}
	t := targets[0]
	ns := namespaceFor(t.kind, e.ns())
	if o.allNamespaces {
		ns = ""
	}
	seen := map[string]string{}
	headers, first := !o.noHeaders, true
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		list, err := c.List(ctx, t.kind, ns, client.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if t.kind.Kind == api.KindEvent {
			if list, err = filterEvents(list, o.forObject); err != nil {
				return err
			}
		}
		var changed []api.Object
		for _, obj := range list {
			m := obj.GetObjectMeta()
			key := m.Namespace + "/" + m.Name
			if len(t.names) > 0 && !slices.Contains(t.names, m.Name) {
				continue
			}
			if seen[key] != m.ResourceVersion {
				seen[key] = m.ResourceVersion
				changed = append(changed, obj)
			}
		}
		if first && t.kind.Kind == api.KindEvent && len(changed) > eventReplay {
			// Events come in time order: the newest matter; a fleet's hour
			// of them would scroll for minutes before anything new.
			fmt.Fprintf(e.errOut, "(%d older events not shown; `hub get events` lists them)\n", len(changed)-eventReplay)
			changed = changed[len(changed)-eventReplay:]
		}
		first = false
		if len(changed) > 0 {
			opts := printer.Options{Wide: o.output == "wide", AllNamespaces: o.allNamespaces && t.kind.Namespaced,
				ShowLabels: o.showLabels, NoHeaders: !headers, Now: time.Now()}
			if err := printer.PrintTable(e.out, t.kind.Kind, changed, opts); err != nil && !errors.Is(err, printer.ErrNoResources) {
				return err
			}
			headers = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
