package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// built is a node's snapshot and the hash of its content. services: the
// snapshot carries Services, which are filled in when it is published
// (Dispatcher.servicesFor); its hash counts them already.
type built struct {
	snap     *wire.Snapshot
	hash     string
	services bool
}

// buildLocked assembles ns's snapshot from the cache, numbered with its
// recorded revision, and hashes its content. The caller holds d.mu.
func (d *Dispatcher) buildLocked(ns *nodeState) built {
	snap := &wire.Snapshot{Node: ns.name, Pods: []wire.SnapshotPod{}}
	secrets, configMaps := map[store.Key]bool{}, map[store.Key]bool{}
	pods := make([]*cachedPod, 0, len(ns.pods))
	for _, p := range ns.pods {
		pods = append(pods, p)
		for _, name := range p.secrets {
			k := store.Key{Kind: api.KindSecret, Namespace: p.pod.Namespace, Name: name}
			if s := d.secrets[k]; s != nil && !secrets[k] {
				secrets[k] = true
				snap.Secrets = append(snap.Secrets, *s)
			}
		}
		for _, name := range p.configMaps {
			k := store.Key{Kind: api.KindConfigMap, Namespace: p.pod.Namespace, Name: name}
			if c := d.configMaps[k]; c != nil && !configMaps[k] {
				configMaps[k] = true
				snap.ConfigMaps = append(snap.ConfigMaps, *c)
			}
		}
	}
	d.addIngressLocked(ns, snap, secrets)
	// Only what the node's pods and Ingresses use, in a stable order.
	sort.Slice(snap.Secrets, func(i, j int) bool {
		a, b := &snap.Secrets[i], &snap.Secrets[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	sort.Slice(snap.ConfigMaps, func(i, j int) bool {
		a, b := &snap.ConfigMaps[i], &snap.ConfigMaps[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	sort.Slice(pods, func(i, j int) bool {
		a, b := &pods[i].pod, &pods[j].pod
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for _, p := range pods {
		snap.Pods = append(snap.Pods, p.pod)
	}
	if ns.record != nil {
		snap.Revision = ns.record.Revision
	}
	snap.Network = d.networkOf(ns)
	var digest string
	services := d.getsServices(ns)
	if services {
		digest = d.siteDigest(d.sites[ns.site])
	}
	return built{snap: snap, hash: d.contentHash(pods, snap, digest), services: services}
}

// snapshotPod is a pod as its node receives it. The controllers' hints
// on the pod (api.AnnotationPrePull, api.AnnotationProgressDeadline)
// become instructions for the agent: images to stage ahead of a rollout,
// and the deadline after which the agent may revert the pod to its last
// good spec on its own.
func snapshotPod(p *api.Pod) wire.SnapshotPod {
	sp := wire.SnapshotPod{
		UID: p.UID, Name: p.Name, Namespace: p.Namespace,
		Labels: p.Labels, SpecHash: api.HashPodSpec(&p.Spec), Spec: p.Spec,
		PrePull: api.PrePullImages(p),
	}
	if d, ok := api.ProgressDeadline(p); ok {
		sp.ProgressDeadlineSeconds = int32(d / time.Second)
	}
	return sp
}

// contentHash identifies a snapshot's content, ignoring its revision:
// its pods, Secrets and ConfigMaps, its Network, its Services (by
// their site's digest) and its Ingresses, keyed with Options.HashKey if set. It hashes the
// JSON of
//
//	struct{ Pods; Secrets, ConfigMaps, Network, Services, Ingresses `json:",omitempty"` }
//
// with Services standing for the digest string, written from each pod's
// JSON as the cache keeps it, so hashing a node costs no marshalling of
// its pods or its Services; a snapshot without Network, Services and
// Ingresses hashes as it did before they existed, so a hub upgraded with no pod
// network in use gives no node a new revision. pods is snap.Pods' cache
// entries, in order.
func (d *Dispatcher) contentHash(pods []*cachedPod, s *wire.Snapshot, services string) string {
	var h hash.Hash
	if len(d.opts.HashKey) > 0 {
		h = hmac.New(sha256.New, d.opts.HashKey)
	} else {
		h = sha256.New()
	}
	h.Write([]byte(`{"Pods":[`))
	for i, p := range pods {
		if i > 0 {
			h.Write([]byte{','})
		}
		h.Write(p.raw)
	}
	h.Write([]byte{']'})
	if len(s.Secrets) > 0 {
		h.Write([]byte(`,"Secrets":`))
		h.Write(mustJSON(s.Secrets))
	}
	if len(s.ConfigMaps) > 0 {
		h.Write([]byte(`,"ConfigMaps":`))
		h.Write(mustJSON(s.ConfigMaps))
	}
	if s.Network != nil {
		h.Write([]byte(`,"Network":`))
		h.Write(mustJSON(s.Network))
	}
	if services != "" {
		h.Write([]byte(`,"Services":`))
		h.Write(mustJSON(services))
	}
	if ni := d.ingress.byNode[s.Node]; ni != nil && len(s.Ingresses) > 0 {
		h.Write([]byte(`,"Ingresses":`))
		h.Write(ni.raw)
	}
	h.Write([]byte{'}'})
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("dispatch: snapshot does not encode: " + err.Error()) // plain data always encodes
	}
	return b
}
