package wire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// testKey is a fixed key, so that the fuzz corpus stays valid.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testSnapshot(node string, rev uint64) *Snapshot {
	return &Snapshot{Node: node, Revision: rev, Pods: []SnapshotPod{{
		UID: "u1", Name: "web-1", Namespace: "default", SpecHash: "abc",
		Labels: map[string]string{"app": "web"},
		// Characters that JSON encoders are tempted to escape or rewrite.
		Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "reg:5000/web:1", Command: []string{"sh", "-c", "echo '<&>' \u2028 é \\\" \x01"}}}},
	}}}
}

func signed(t testing.TB, key ed25519.PrivateKey, snap *Snapshot) []byte {
	t.Helper()
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.EncodeSnapshot(snap, snap.Revision, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verifier(t testing.TB, node string, keys ...ed25519.PrivateKey) *Verifier {
	t.Helper()
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	v, err := NewVerifier(node, pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignAndVerify(t *testing.T) {
	key := testKey(1)
	snap := testSnapshot("n1", 7)
	b := signed(t, key, snap)
	topic := NodeTopic("n1", TopicDesired)

	env, err := Decode(topic, b)
	if err != nil {
		t.Fatal(err)
	}
	if env.V != Version || env.Type != TypeSnapshot || env.Node != "n1" || env.Seq != 7 || env.Sig == nil || env.Sig.Revision != 7 {
		t.Fatalf("envelope = %+v", env)
	}
	// The payload travels verbatim: it is json.Marshal's output, byte for byte.
	want, _ := json.Marshal(snap)
	if !bytes.Equal(env.Payload, want) {
		t.Fatalf("payload was rewritten:\n%s\n%s", env.Payload, want)
	}
	got, err := verifier(t, "n1", key).Verify(env, 6)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 7 || got.Pods[0].Spec.Containers[0].Command[2] != snap.Pods[0].Spec.Containers[0].Command[2] {
		t.Fatalf("verified snapshot = %+v", got)
	}
	// The envelope is plain JSON that any decoder reads.
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil || generic["sig"] == nil || generic["payload"] == nil {
		t.Fatalf("envelope is not plain JSON: %v %v", err, generic)
	}
}

func TestSignedMessageLayout(t *testing.T) {
	// The documented framing, byte for byte, so that another
	// implementation can check against it.
	msg, err := signedMessage("n1", 258, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "flotilla/v1 snapshot\x00" + "\x00\x02n1" + "\x00\x00\x00\x00\x00\x00\x01\x02" + "{}"
	if string(msg) != want {
		t.Fatalf("signed message = %q, want %q", msg, want)
	}
	if id := KeyID(testKey(1).Public().(ed25519.PublicKey)); len(id) != 16 {
		t.Fatalf("key id %q is not 8 bytes of hex", id)
	}
	if _, err := hex.DecodeString(KeyID(testKey(1).Public().(ed25519.PublicKey))); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRejects(t *testing.T) {
	key, other := testKey(1), testKey(2)
	good := signed(t, key, testSnapshot("n1", 7))
	v := verifier(t, "n1", key)
	topicN1 := NodeTopic("n1", TopicDesired)

	unsigned, _ := Encode(TypeSnapshot, "n1", 7, time.Now(), testSnapshot("n1", 7))
	forN2 := signed(t, key, testSnapshot("n2", 7))
	byOther := signed(t, other, testSnapshot("n1", 7))

	// An attacker's key, with the pinned key's id written in.
	forged := signed(t, other, testSnapshot("n1", 7))
	var fenv map[string]json.RawMessage
	_ = json.Unmarshal(forged, &fenv)
	var fsig Signature
	_ = json.Unmarshal(fenv["sig"], &fsig)
	fsig.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	fenv["sig"], _ = json.Marshal(fsig)
	forgedWithID, _ := json.Marshal(fenv)

	// Rewritten in place: the image changes, the signature does not.
	tamperedPayload := bytes.Replace(good, []byte("reg:5000/web:1"), []byte("evil:666/web:1"), 1)
	// The signed revision raised, so an old snapshot would pass as new.
	tamperedRev := bytes.Replace(good, []byte(`"rev":7`), []byte(`"rev":9`), 1)
	// Both revisions raised together.
	tamperedBoth := bytes.Replace(tamperedRev, []byte(`"revision":7`), []byte(`"revision":9`), 1)
	// n2's genuine snapshot, readdressed to n1 in the envelope.
	readdressed := bytes.Replace(forN2, []byte(`"node":"n2","seq"`), []byte(`"node":"n1","seq"`), 1)
	// A signature cut short.
	var genv map[string]json.RawMessage
	_ = json.Unmarshal(good, &genv)
	var gsig Signature
	_ = json.Unmarshal(genv["sig"], &gsig)
	gsig.Value = gsig.Value[:32]
	genv["sig"], _ = json.Marshal(gsig)
	short, _ := json.Marshal(genv)

	for _, tc := range []struct {
		name  string
		topic string
		msg   []byte
		last  uint64
		want  error
	}{
		{"unsigned", topicN1, unsigned, 0, ErrUnsigned},
		{"other node on its own topic", NodeTopic("n2", TopicDesired), forN2, 0, ErrWrongNode},
		{"readdressed to this node", topicN1, readdressed, 0, ErrBadSignature},
		{"signed by another key", topicN1, byOther, 0, ErrBadSignature},
		{"another key claiming the pinned id", topicN1, forgedWithID, 0, ErrBadSignature},
		{"tampered payload", topicN1, tamperedPayload, 0, ErrBadSignature},
		{"tampered signed revision", topicN1, tamperedRev, 0, ErrBadSignature},
		{"tampered revisions", topicN1, tamperedBoth, 0, ErrBadSignature},
		{"short signature", topicN1, short, 0, ErrBadSignature},
		{"replayed older", topicN1, good, 8, ErrReplay},
		{"same revision again", topicN1, good, 7, ErrReplay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.msg, good) && tc.want != ErrReplay {
				t.Fatal("the test message was not changed")
			}
			_, err := v.VerifyMessage(tc.topic, tc.msg, tc.last)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrUnsigned, ErrBadSignature, ErrWrongNode, ErrReplay} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("%v also matches %v", err, other)
				}
			}
		})
	}

	_, err := v.VerifyMessage(topicN1, good, 7)
	var re *ReplayError
	if !errors.As(err, &re) || !re.Duplicate() || re.Revision != 7 || re.Last != 7 {
		t.Errorf("same revision: %v", err)
	}
	_, err = v.VerifyMessage(topicN1, good, 9)
	if !errors.As(err, &re) || re.Duplicate() {
		t.Errorf("older revision: %v", err)
	}
	// A non-snapshot envelope is never a valid snapshot.
	if _, err := v.Verify(Envelope{V: 1, Type: TypeHeartbeat, Node: "n1", Payload: []byte(`{}`), Sig: &Signature{}}, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("heartbeat: %v", err)
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	old, next := testKey(1), testKey(3)
	v := verifier(t, "n1", old, next)
	topic := NodeTopic("n1", TopicDesired)
	if _, err := v.VerifyMessage(topic, signed(t, old, testSnapshot("n1", 1)), 0); err != nil {
		t.Errorf("old key: %v", err)
	}
	if _, err := v.VerifyMessage(topic, signed(t, next, testSnapshot("n1", 2)), 1); err != nil {
		t.Errorf("new key: %v", err)
	}
	if _, err := verifier(t, "n1", next).VerifyMessage(topic, signed(t, old, testSnapshot("n1", 3)), 2); !errors.Is(err, ErrBadSignature) {
		t.Errorf("retired key: %v", err)
	}
}

func ecdsaPEM(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestSigningKeyPEM(t *testing.T) {
	pub := testKey(1).Public().(ed25519.PublicKey)
	b, err := EncodeSigningKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("not PEM: %s", b)
	}
	got, err := ParseSigningKey(b)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("round trip: %v %x", err, got)
	}
	for name, bad := range map[string][]byte{
		"empty":         nil,
		"not PEM":       []byte("hello"),
		"wrong type":    bytes.Replace(b, []byte("PUBLIC KEY"), []byte("PRIVATE KEY"), 2),
		"trailing data": append(append([]byte(nil), b...), "junk"...),
		"corrupt DER":   []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
		"an ECDSA key":  ecdsaPEM(t),
	} {
		if _, err := ParseSigningKey(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSigner(ed25519.PrivateKey{1, 2}); err == nil {
		t.Error("NewSigner accepted a short key")
	}
	if _, err := NewVerifier("n1"); err == nil {
		t.Error("NewVerifier without keys")
	}
	if _, err := NewVerifier("", pub); err == nil {
		t.Error("NewVerifier without a node")
	}
	if _, err := NewVerifier("n1", pub[:5]); err == nil {
		t.Error("NewVerifier with a short key")
	}
}

// FuzzVerify feeds arbitrary desired messages to the verifier, which must
// never panic, and must accept only what the hub key signed for this node
// with a revision above last: whatever it accepts is checked again here,
// independently.
func FuzzVerify(f *testing.F) {
	key := testKey(1)
	good := signed(f, key, testSnapshot("n1", 7))
	unsigned, _ := Encode(TypeSnapshot, "n1", 7, time.Unix(0, 0), testSnapshot("n1", 7))
	f.Add(good, uint64(0))
	f.Add(good, uint64(7))
	f.Add(bytes.Replace(good, []byte("web-1"), []byte("web-2"), 1), uint64(0))
	f.Add(unsigned, uint64(0))
	f.Add(signed(f, testKey(2), testSnapshot("n1", 7)), uint64(0))
	f.Add(signed(f, key, &Snapshot{Node: "n1", Revision: 1, Pods: []SnapshotPod{}}), uint64(0))
	f.Add([]byte(`{"v":1,"type":"Snapshot","node":"n1","seq":1,"sig":{"kid":"","rev":1,"sig":""},"payload":{}}`), uint64(0))

	v := verifier(f, "n1", key)
	pub := key.Public().(ed25519.PublicKey)
	topic := NodeTopic("n1", TopicDesired)
	f.Fuzz(func(t *testing.T, msg []byte, last uint64) {
		snap, err := v.VerifyMessage(topic, msg, last)
		if err != nil {
			_ = err.Error()
			return
		}
		env, derr := Decode(topic, msg)
		if derr != nil || env.Sig == nil {
			t.Fatalf("accepted a message that does not decode or is unsigned: %v", derr)
		}
		signedBytes, _ := signedMessage(env.Node, env.Sig.Revision, env.Payload)
		if !ed25519.Verify(pub, signedBytes, env.Sig.Value) {
			t.Fatal("accepted a signature that does not verify")
		}
		if snap.Node != "n1" || env.Node != "n1" || snap.Revision != env.Sig.Revision || snap.Revision <= last {
			t.Fatalf("accepted node %q revision %d (signed %d, last %d)", snap.Node, snap.Revision, env.Sig.Revision, last)
		}
	})
}
