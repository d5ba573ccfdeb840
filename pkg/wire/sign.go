package wire

// Signed desired state. The hub signs every Snapshot it publishes with its
// Ed25519 key, and an agent acts on a snapshot only if the signature
// verifies against the hub key it pinned at enrolment, the snapshot is for
// its own node, and its revision is newer than the one it runs. Anyone who
// can publish on a desired topic (a broker without ACLs, a compromised
// broker, another node) can then at worst withhold snapshots, never make
// an agent run something the hub did not send it.
//
// What is signed is never a re-encoding of the snapshot: it is the exact
// payload bytes the envelope carries, framed with the node name and the
// revision,
//
//	"flotilla/v1 snapshot\x00" ‖ uint16 big-endian len(node) ‖ node ‖
//	uint64 big-endian revision ‖ payload
//
// and the signature travels next to the payload, in the envelope's "sig"
// member: {"kid": key id, "rev": revision, "sig": base64 signature}. The
// signer writes the payload into the envelope verbatim and the receiver
// verifies the bytes it received (json.RawMessage keeps them), so no JSON
// encoder on either side can make a good signature fail or a bad one pass.
// The key id is the hex of the first 8 bytes of the SHA-256 of the public
// key, so a verifier can hold several keys while the hub's key is rotated.
// The Signature member is new within v1: older agents ignore it.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"time"
)

// Signature is the signature of one Snapshot envelope.
type Signature struct {
	// KeyID names the key that signed, see KeyID.
	KeyID string `json:"kid"`
	// Revision is the snapshot revision that was signed; it must equal the
	// payload's.
	Revision uint64 `json:"rev"`
	// Value is the Ed25519 signature (base64 in JSON).
	Value []byte `json:"sig"`
}

// signingContext separates snapshot signatures from anything else the key
// might ever sign.
const signingContext = "flotilla/v1 snapshot\x00"

// Verification failures. Verify's errors wrap exactly one of them.
var (
	// ErrUnsigned: the envelope carries no signature.
	ErrUnsigned = errors.New("snapshot is not signed")
	// ErrBadSignature: the signature does not verify with any pinned key,
	// names an unknown key, or does not match the payload.
	ErrBadSignature = errors.New("snapshot signature is not valid")
	// ErrWrongNode: the snapshot is for another node.
	ErrWrongNode = errors.New("snapshot is for another node")
	// ErrReplay: the snapshot's revision is not newer than the one the
	// node already accepted. See ReplayError.
	ErrReplay = errors.New("snapshot revision is not newer than the accepted one")
)

// ReplayError is the ErrReplay of one snapshot: its revision and the
// newest one the node had accepted. Duplicate reports the usual harmless
// case, the retained snapshot delivered again after a reconnect.
type ReplayError struct {
	Revision, Last uint64
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("%v: revision %d, accepted %d", ErrReplay, e.Revision, e.Last)
}

// Is makes errors.Is(err, ErrReplay) true.
func (e *ReplayError) Is(target error) bool { return target == ErrReplay }

// Duplicate reports whether the snapshot is the one already accepted.
func (e *ReplayError) Duplicate() bool { return e.Revision == e.Last }

// KeyID identifies a signing key: the hex of the first 8 bytes of the
// SHA-256 of the public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// signedMessage is the byte string a snapshot's signature covers.
func signedMessage(node string, revision uint64, payload []byte) ([]byte, error) {
	if len(node) > math.MaxUint16 {
		return nil, fmt.Errorf("node name of %d bytes is too long to sign", len(node))
	}
	msg := make([]byte, 0, len(signingContext)+2+len(node)+8+len(payload))
	msg = append(msg, signingContext...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(node)))
	msg = append(msg, node...)
	msg = binary.BigEndian.AppendUint64(msg, revision)
	return append(msg, payload...), nil
}

// Signer signs the hub's snapshots.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a Signer for key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("snapshot signing key: %d bytes, want an Ed25519 private key of %d", len(key), ed25519.PrivateKeySize)
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, id: KeyID(pub)}, nil
}

// KeyID is the id of the signer's key.
func (s *Signer) KeyID() string { return s.id }

// envelopeHead is an Envelope without its payload, which EncodeSnapshot
// appends verbatim.
type envelopeHead struct {
	V    int        `json:"v"`
	Type string     `json:"type"`
	Node string     `json:"node"`
	Seq  uint64     `json:"seq"`
	Time time.Time  `json:"time"`
	Sig  *Signature `json:"sig"`
}

// EncodeSnapshot encodes snap as a signed Snapshot envelope, as Encode
// would, plus the signature.
func (s *Signer) EncodeSnapshot(snap *Snapshot, seq uint64, at time.Time) ([]byte, error) {
	payload, err := json.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot for node %s: %w", snap.Node, err)
	}
	msg, err := signedMessage(snap.Node, snap.Revision, payload)
	if err != nil {
		return nil, fmt.Errorf("sign snapshot for node %s: %w", snap.Node, err)
	}
	head, err := json.Marshal(envelopeHead{
		V: Version, Type: TypeSnapshot, Node: snap.Node, Seq: seq, Time: at.UTC(),
		Sig: &Signature{KeyID: s.id, Revision: snap.Revision, Value: ed25519.Sign(s.key, msg)},
	})
	if err != nil {
		return nil, fmt.Errorf("encode snapshot envelope for node %s: %w", snap.Node, err)
	}
	// head is a JSON object: drop its closing brace and add the payload.
	out := make([]byte, 0, len(head)+len(payload)+16)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"payload":`...)
	out = append(out, payload...)
	return append(out, '}'), nil
}

// Verifier checks the snapshots one node receives.
type Verifier struct {
	node string
	keys map[string]ed25519.PublicKey
}

// NewVerifier returns a Verifier for node that trusts keys.
func NewVerifier(node string, keys ...ed25519.PublicKey) (*Verifier, error) {
	if node == "" {
		return nil, errors.New("snapshot verifier: node name is empty")
	}
	if len(keys) == 0 {
		return nil, errors.New("snapshot verifier: no hub key")
	}
	v := &Verifier{node: node, keys: make(map[string]ed25519.PublicKey, len(keys))}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("snapshot verifier: key of %d bytes, want an Ed25519 public key of %d", len(k), ed25519.PublicKeySize)
		}
		v.keys[KeyID(k)] = append(ed25519.PublicKey(nil), k...)
	}
	return v, nil
}

// Verify checks a decoded Snapshot envelope (see Decode) and returns its
// snapshot if it is signed by a trusted key, is for the verifier's node
// and has a revision above last, the newest the node accepted. Otherwise
// the error wraps ErrUnsigned, ErrWrongNode, ErrBadSignature or ErrReplay
// (a *ReplayError), or is a *Error for a payload that does not decode.
// Nothing about the payload is believed before its signature verified.
// With a *ReplayError the verified snapshot is returned too: a Duplicate
// is the snapshot the node runs, delivered again, and its Secrets (which
// the agent keeps only in memory) are good to use.
func (v *Verifier) Verify(env Envelope, last uint64) (Snapshot, error) {
	if env.Type != TypeSnapshot {
		return Snapshot{}, fmt.Errorf("%w: message type %q is not %s", ErrBadSignature, env.Type, TypeSnapshot)
	}
	sig := env.Sig
	if sig == nil {
		return Snapshot{}, fmt.Errorf("node %s: %w", env.Node, ErrUnsigned)
	}
	if env.Node != v.node {
		return Snapshot{}, fmt.Errorf("%w: envelope names node %q, this is %q", ErrWrongNode, env.Node, v.node)
	}
	key, ok := v.keys[sig.KeyID]
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: signed with key %q, which is not the pinned hub key", ErrBadSignature, clipID(sig.KeyID))
	}
	msg, err := signedMessage(env.Node, sig.Revision, env.Payload)
	if err != nil || len(sig.Value) != ed25519.SignatureSize || !ed25519.Verify(key, msg, sig.Value) {
		return Snapshot{}, fmt.Errorf("%w: revision %d does not verify with key %s", ErrBadSignature, sig.Revision, sig.KeyID)
	}
	var snap Snapshot
	if err := decodeStrict(env.Payload, &snap); err != nil {
		return Snapshot{}, &Error{Topic: NodeTopic(env.Node, TopicDesired), Node: env.Node, Err: fmt.Errorf("signed snapshot payload: %w", err)}
	}
	if snap.Node != env.Node {
		return Snapshot{}, fmt.Errorf("%w: signed payload names node %q in an envelope for %q", ErrWrongNode, snap.Node, env.Node)
	}
	if snap.Revision != sig.Revision {
		return Snapshot{}, fmt.Errorf("%w: payload revision %d, signed revision %d", ErrBadSignature, snap.Revision, sig.Revision)
	}
	if snap.Revision <= last {
		return snap, &ReplayError{Revision: snap.Revision, Last: last}
	}
	return snap, nil
}

// VerifyMessage decodes a message received on topic (see Decode) and
// verifies it.
func (v *Verifier) VerifyMessage(topic string, b []byte, last uint64) (Snapshot, error) {
	env, err := Decode(topic, b)
	if err != nil {
		return Snapshot{}, err
	}
	return v.Verify(env, last)
}

func clipID(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// pemPublicKey is the PEM block type of an encoded signing key.
const pemPublicKey = "PUBLIC KEY"

// EncodeSigningKey encodes the hub's public signing key as PEM (PKIX), as
// enrolment hands it to agents.
func EncodeSigningKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParseSigningKey decodes a PEM (PKIX) Ed25519 public key.
func ParseSigningKey(b []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemPublicKey {
		return nil, errors.New("signing key: no PEM PUBLIC KEY block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("signing key: data after the PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signing key: %T, want an Ed25519 key", key)
	}
	return pub, nil
}
