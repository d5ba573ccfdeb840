package printer

import (
	"fmt"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// IngressBackend is what describe shows of one backend Service of an
// Ingress: the Service (nil: not found) and its Endpoints (nil: none).
type IngressBackend struct {
	Service   *api.Service
	Endpoints *api.Endpoints
}

// ingressRow is kubectl get ingress's row: NAME, CLASS, HOSTS, ADDRESS,
// PORTS, AGE. PORTS is kubectl's too: 80, and 443 with TLS, whatever
// ports the agents serve on.
func ingressRow(in *api.Ingress, wide bool, now time.Time) ([]string, []string) {
	headers := []string{"NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"}
	class := none
	if in.Spec.IngressClassName != nil {
		class = *in.Spec.IngressClassName
	}
	ports := "80"
	if len(in.Spec.TLS) > 0 {
		ports = "80, 443"
	}
	return headers, []string{in.Name, class, ingressHosts(in.Spec.Rules), ingressAddress(in.Status.LoadBalancer, wide), ports, age(now, in.CreationTimestamp)}
}

// ingressHosts is kubectl's HOSTS: the rules' hosts, at most four and
// then "+ N more...", "*" when no rule names one.
func ingressHosts(rules []api.IngressRule) string {
	const max = 4
	var list []string
	more := false
	for _, r := range rules {
		if len(list) == max {
			more = true
		}
		if !more && r.Host != "" {
			list = append(list, r.Host)
		}
	}
	if len(list) == 0 {
		return "*"
	}
	s := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", s, len(rules)-max)
	}
	return s
}

// ingressAddress is kubectl's ADDRESS: the addresses (or host names) the
// Ingress is served on, joined by commas, cut to 16 characters unless
// wide.
func ingressAddress(s api.IngressLoadBalancerStatus, wide bool) string {
	var list []string
	for _, in := range s.Ingress {
		switch {
		case in.IP != "":
			list = append(list, in.IP)
		case in.Hostname != "":
			list = append(list, in.Hostname)
		}
	}
	r := strings.Join(list, ",")
	const width = 16
	if !wide && len(r) > width {
		r = r[:width-3] + "..."
	}
	return r
}

// ingressClassRow is kubectl get ingressclass's row: NAME, CONTROLLER,
// PARAMETERS, AGE (Flotilla's classes have no parameters).
func ingressClassRow(c *api.IngressClass, now time.Time) ([]string, []string) {
	return []string{"NAME", "CONTROLLER", "PARAMETERS", "AGE"}, []string{c.Name, c.Spec.Controller, none, age(now, c.CreationTimestamp)}
}

// describeIngress is kubectl describe ingress's text; rel.IngressBackends
// holds the backend Services and their Endpoints by Service name.
func describeIngress(d *describer, in *api.Ingress, rel Related) {
	d.line(0, "Name:\t%s", in.Name)
	d.labels(0, "Labels", in.Labels)
	d.line(0, "Namespace:\t%s", in.Namespace)
	d.line(0, "Address:\t%s", ingressAddress(in.Status.LoadBalancer, true))
	class := none
	if in.Spec.IngressClassName != nil {
		class = *in.Spec.IngressClassName
	}
	d.line(0, "Ingress Class:\t%s", class)
	def := "<default>"
	if in.Spec.DefaultBackend != nil {
		def = describeIngressBackend(in.Spec.DefaultBackend, rel.IngressBackends)
	}
	d.line(0, "Default backend:\t%s", def)
	if len(in.Spec.TLS) > 0 {
		d.line(0, "TLS:")
		for _, t := range in.Spec.TLS {
			d.line(1, "%s terminates %s", t.SecretName, strings.Join(t.Hosts, ","))
		}
	}
	d.line(0, "Rules:")
	d.line(1, "Host\tPath\tBackends")
	d.line(1, "----\t----\t--------")
	count := 0
	for _, r := range in.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		count++
		d.line(1, "%s\t", hostOrStar(r.Host))
		for i := range r.HTTP.Paths {
			p := &r.HTTP.Paths[i]
			d.line(2, "\t%s \t%s", p.Path, describeIngressBackend(&p.Backend, rel.IngressBackends))
		}
	}
	if count == 0 {
		d.line(1, "*\t*\t%s", def)
	}
	d.annotations(0, "Annotations", in.Annotations)
}

func hostOrStar(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// describeIngressBackend is kubectl's "service:port (endpoints)", with
// the ready endpoints of the Service port the backend names.
func describeIngressBackend(b *api.IngressBackend, backends map[string]IngressBackend) string {
	if b.Service == nil {
		return none
	}
	name := b.Service.Name + ":" + b.Service.Port.String()
	be := backends[b.Service.Name]
	if be.Service == nil {
		return fmt.Sprintf("%s (<error: services %q not found>)", name, b.Service.Name)
	}
	port := ""
	for _, sp := range be.Service.Spec.Ports {
		if (b.Service.Port.Number != 0 && sp.Port == b.Service.Port.Number) || (b.Service.Port.Name != "" && sp.Name == b.Service.Port.Name) {
			port = sp.Name
		}
	}
	return fmt.Sprintf("%s (%s)", name, formatEndpoints(be.Endpoints, map[string]bool{port: true}))
}

// describeIngressClass is kubectl describe ingressclass's text.
func describeIngressClass(d *describer, c *api.IngressClass) {
	d.line(0, "Name:\t%s", c.Name)
	d.labels(0, "Labels", c.Labels)
	d.annotations(0, "Annotations", c.Annotations)
	d.line(0, "Controller:\t%s", c.Spec.Controller)
}
