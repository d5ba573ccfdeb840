package pki

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Bootstrap tokens are "{id}.{secret}": a 6-character id, which names the
// token's record and may be shown and logged, and a 32-character secret
// (about 165 bits), both of lower-case letters and digits. The hub keeps
// only the SHA-256 of the secret, so the token is shown once, when it is
// created. A token has an expiry (default 24 h, at most a year), enrols
// one node unless it is given more uses or made unlimited until it
// expires, may be bound to one node name, and may carry labels for the
// nodes it enrols.
var tokenPattern = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{32})$`)

// Token limits.
const (
	DefaultTokenTTL = 24 * time.Hour
	MaxTokenTTL     = 365 * 24 * time.Hour
	tokenIDLength   = 6
	tokenSecretLen  = 32
	maxDescription  = 256
)

// Errors about tokens.
var (
	// ErrInvalidToken: the token is malformed, unknown, wrong, expired or
	// used up. Which of these is not said, to the caller or in the
	// error's text.
	ErrInvalidToken = errors.New("bootstrap token is not valid (unknown, expired or used up)")
	// ErrInvalid: an operator's request (a token's settings, a decision)
	// is malformed.
	ErrInvalid = errors.New("invalid request")
)

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseToken splits a token into its id and secret.
func parseToken(token string) (id, secret string, ok bool) {
	m := tokenPattern.FindStringSubmatch(token)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// CreateToken makes a bootstrap token and returns it, with the CA
// fingerprint an agent pins. The token itself is not stored and cannot be
// shown again.
func (a *Authority) CreateToken(req api.BootstrapTokenRequest) (api.BootstrapTokenResponse, error) {
	ttl := time.Duration(req.TTLSeconds) * time.Second
	switch {
	case req.TTLSeconds < 0:
		return api.BootstrapTokenResponse{}, fmt.Errorf("%w: ttlSeconds must not be negative", ErrInvalid)
	case ttl == 0:
		ttl = DefaultTokenTTL
	case ttl > MaxTokenTTL:
		return api.BootstrapTokenResponse{}, fmt.Errorf("%w: ttlSeconds must be at most %d (a year)", ErrInvalid, int64(MaxTokenTTL/time.Second))
	}
	uses := req.Uses
	switch {
	case uses < 0:
		return api.BootstrapTokenResponse{}, fmt.Errorf("%w: uses must not be negative", ErrInvalid)
	case req.Unlimited && uses > 0:
		return api.BootstrapTokenResponse{}, fmt.Errorf("%w: uses and unlimited are exclusive", ErrInvalid)
	case !req.Unlimited && uses == 0:
		uses = 1
	}
	for k, v := range req.Labels {
		if err := api.ValidateLabelKey(k); err != nil {
			return api.BootstrapTokenResponse{}, fmt.Errorf("%w: labels: %v", ErrInvalid, err)
		}
		if err := api.ValidateLabelValue(v); err != nil {
			return api.BootstrapTokenResponse{}, fmt.Errorf("%w: labels: %v", ErrInvalid, err)
		}
	}
	if req.NodeName != "" {
		if err := ValidateNodeName(req.NodeName); err != nil {
			return api.BootstrapTokenResponse{}, fmt.Errorf("%w: nodeName: %v", ErrInvalid, err)
		}
	}
	if len(req.Description) > maxDescription {
		return api.BootstrapTokenResponse{}, fmt.Errorf("%w: description must be at most %d bytes", ErrInvalid, maxDescription)
	}

	now := a.now()
	var rec *tokenRecord
	var token string
	err := a.store.Update(func(tx store.Tx) error {
		// A new id until one is free: 36⁶ ids make a collision rare.
		for range 16 {
			id, err := randomString(tokenIDLength)
			if err != nil {
				return err
			}
			if _, err := tx.Get(store.Key{Kind: KindBootstrapToken, Name: id}); err == nil {
				continue
			} else if !store.IsNotFound(err) {
				return err
			}
			secret, err := randomString(tokenSecretLen)
			if err != nil {
				return err
			}
			token = id + "." + secret
			rec = &tokenRecord{
				TypeMeta:    api.TypeMeta{Kind: KindBootstrapToken},
				ObjectMeta:  api.ObjectMeta{Name: id, CreationTimestamp: apiTime(now)},
				SecretHash:  hashSecret(secret),
				Expires:     apiTime(now.Add(ttl)),
				UsesLeft:    uses,
				Unlimited:   req.Unlimited,
				Labels:      req.Labels,
				NodeName:    req.NodeName,
				Description: req.Description,
			}
			return tx.PutTTL(rec, ttl)
		}
		return errors.New("no free token id after 16 tries")
	})
	if err != nil {
		return api.BootstrapTokenResponse{}, fmt.Errorf("create bootstrap token: %w", err)
	}
	return api.BootstrapTokenResponse{
		BootstrapToken: tokenInfo(rec),
		Token:          token,
		CAFingerprint:  a.creds.CA.Fingerprint(),
	}, nil
}

func tokenInfo(r *tokenRecord) api.BootstrapToken {
	return api.BootstrapToken{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "BootstrapToken"},
		ID:       r.Name, Expires: r.Expires, UsesLeft: r.UsesLeft, Unlimited: r.Unlimited, Used: r.Used,
		Labels: r.Labels, NodeName: r.NodeName, Description: r.Description,
	}
}

// Tokens lists the tokens that are still valid, without their secrets.
func (a *Authority) Tokens() ([]api.BootstrapToken, error) {
	var recs []*tokenRecord
	err := a.store.View(func(tx store.Tx) error {
		var err error
		recs, err = store.List[tokenRecord](tx, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	now := a.now()
	out := []api.BootstrapToken{}
	for _, r := range recs {
		if r.Expires.After(now) {
			out = append(out, tokenInfo(r))
		}
	}
	return out, nil
}

// DeleteToken withdraws a token by its id.
func (a *Authority) DeleteToken(id string) error {
	err := a.store.Update(func(tx store.Tx) error {
		return tx.Delete(store.Key{Kind: KindBootstrapToken, Name: id})
	})
	if store.IsNotFound(err) {
		return fmt.Errorf("bootstrap token %q: %w", clip(id), ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete bootstrap token %q: %w", clip(id), err)
	}
	return nil
}

// useToken checks token inside tx and takes one use of it. It returns the
// token's record as it was.
func (a *Authority) useToken(tx store.Tx, token string, now time.Time) (*tokenRecord, error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return nil, ErrInvalidToken
	}
	rec, err := store.Get[tokenRecord](tx, "", id)
	if store.IsNotFound(err) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(rec.SecretHash)) != 1 {
		return nil, ErrInvalidToken
	}
	if !now.Before(rec.Expires.Time) || (!rec.Unlimited && rec.UsesLeft <= 0) {
		return nil, ErrInvalidToken
	}
	used := *rec
	used.Used++
	if !rec.Unlimited {
		used.UsesLeft--
		if used.UsesLeft == 0 {
			return rec, tx.Delete(store.KeyOf(rec))
		}
	}
	return rec, tx.PutTTL(&used, rec.Expires.Sub(now))
}

func apiTime(t time.Time) api.Time { return api.NewTime(t.UTC().Truncate(time.Second)) }
