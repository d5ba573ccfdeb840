// Package desired is the hub's record of each node's desired snapshot: the
// revision and content hash of the last snapshot dispatch numbered for the
// node. Dispatch writes it before it publishes the snapshot, so that a
// node's revision only grows, across hub restarts too; the API joins its
// revision into the nodes it serves (status.desiredRevision). It is the
// hub's own bookkeeping, not an API resource.
package desired

import "github.com/flotilla-edge/flotilla/pkg/api"

// Kind is the store kind of the records; metadata.name is the node's name.
const Kind = "NodeSnapshot"

// Record is one node's record.
type Record struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Revision       uint64   `json:"revision"`
	Hash           string   `json:"hash"`
	Published      api.Time `json:"published,omitempty"`
}

// StoreKind is its kind in the store.
func (*Record) StoreKind() string { return Kind }

// New returns node's record of revision, for content hash, numbered at
// published.
func New(node string, revision uint64, hash string, published api.Time) *Record {
	return &Record{
		TypeMeta:   api.TypeMeta{Kind: Kind},
		ObjectMeta: api.ObjectMeta{Name: node},
		Revision:   revision, Hash: hash, Published: published,
	}
}

// Join fills in the revision of the latest snapshot numbered for a node
// being served; r may be nil.
func Join(n *api.Node, r *Record) {
	if r != nil {
		n.Status.DesiredRevision = r.Revision
	}
}
