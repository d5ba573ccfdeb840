// Package client is the hub CLI's view of the hub's HTTP API: typed calls
// that return API objects, and errors that read like kubectl's ("Error from
// server (NotFound): daemonsets.apps "x" not found").
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Client calls one hub.
type Client struct {
	base string
	http *http.Client
	opts Options
}

// New returns a client for the hub at server (for example
// http://127.0.0.1:8080), without credentials.
func New(server string) (*Client, error) { return NewWithOptions(server, Options{}) }

// Options are a client's credentials.
type Options struct {
	// CAPEM, if set, is the only root the hub's certificate is checked
	// against (the hub CA).
	CAPEM []byte
	// Token is sent as "Authorization: Bearer".
	Token string
	// UnreachableHint, if set, ends the error of a request that found
	// no hub at the server's address: where the address came from and
	// how to give another.
	UnreachableHint string
}

// NewWithOptions returns a client for the hub at server with credentials.
func NewWithOptions(server string, o Options) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want http://host:port or https://host:port", server)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("the hub CA (certificate-authority) holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	var rt http.RoundTripper = tr
	if o.Token != "" {
		if u.Scheme != "https" && u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1" {
			return nil, fmt.Errorf("--server %q: a token is only sent over https (or to loopback)", server)
		}
		rt = bearer{token: o.Token, next: tr}
	}
	return &Client{base: strings.TrimRight(server, "/"), http: &http.Client{Timeout: 60 * time.Second, Transport: rt}, opts: o}, nil
}

// bearer adds the token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Post sends in as JSON to path and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, "application/json", body, out)
}

// GetJSON decodes the answer to GET path into out.
func (c *Client) GetJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, "", nil, out)
}

// StatusError is an error the hub answered with.
type StatusError struct {
	Status api.Status
}

func (e *StatusError) Error() string {
	if e.Status.Code == http.StatusUnauthorized {
		return "Error from server (Unauthorized): " + e.Status.Message
	}
	if e.Status.Reason == "" {
		return "Error from server: " + e.Status.Message
	}
	return fmt.Sprintf("Error from server (%s): %s", e.Status.Reason, e.Status.Message)
}

// IsNotFound reports whether err is the hub's NotFound.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status.Reason == api.ReasonNotFound
}

// Path returns the API path of a resource: a list when name is empty, all
// namespaces when namespace is empty for a namespaced kind.
func Path(k api.KindInfo, namespace, name string) string {
	var b strings.Builder
	if strings.Contains(k.APIVersion, "/") {
		b.WriteString("/apis/" + k.APIVersion)
	} else {
		b.WriteString("/api/" + k.APIVersion)
	}
	if k.Namespaced && namespace != "" {
		b.WriteString("/namespaces/" + url.PathEscape(namespace))
	}
	b.WriteString("/" + k.Resource)
	if name != "" {
		b.WriteString("/" + url.PathEscape(name))
	}
	return b.String()
}

// ListOptions filter a list.
type ListOptions struct {
	LabelSelector string
	FieldSelector string
}

// List returns the objects of kind in namespace ("" for all namespaces).
func (c *Client) List(ctx context.Context, k api.KindInfo, namespace string, opts ListOptions) ([]api.Object, error) {
	q := url.Values{}
	if opts.LabelSelector != "" {
		q.Set("labelSelector", opts.LabelSelector)
	}
	if opts.FieldSelector != "" {
		q.Set("fieldSelector", opts.FieldSelector)
	}
	path := Path(k, namespace, "")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var list api.List
	if err := c.do(ctx, http.MethodGet, path, "", nil, &list); err != nil {
		return nil, err
	}
	out := make([]api.Object, 0, len(list.Items))
	for _, raw := range list.Items {
		obj := k.NewObject()
		if err := json.Unmarshal(raw, obj); err != nil {
			return nil, fmt.Errorf("decode %s from the hub: %w", k.Resource, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// Get returns one object.
func (c *Client) Get(ctx context.Context, k api.KindInfo, namespace, name string) (api.Object, error) {
	obj := k.NewObject()
	if err := c.do(ctx, http.MethodGet, Path(k, namespace, name), "", nil, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Delete deletes one object.
func (c *Client) Delete(ctx context.Context, k api.KindInfo, namespace, name string) error {
	return c.do(ctx, http.MethodDelete, Path(k, namespace, name), "", nil, nil)
}

// Patch applies a JSON merge patch to one object and returns the result.
func (c *Client) Patch(ctx context.Context, k api.KindInfo, namespace, name string, patch any) (api.Object, error) {
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	obj := k.NewObject()
	if err := c.do(ctx, http.MethodPatch, Path(k, namespace, name), "application/merge-patch+json", body, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Apply sends objects as one atomic apply.
func (c *Client) Apply(ctx context.Context, objs []api.Object, dryRun bool) ([]api.ApplyResult, error) {
	items := make([]json.RawMessage, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		items = append(items, b)
	}
	body, err := json.Marshal(api.List{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: items})
	if err != nil {
		return nil, err
	}
	path := "/api/v1/apply"
	if dryRun {
		path += "?dryRun=true"
	}
	var resp api.ApplyResponse
	if err := c.do(ctx, http.MethodPost, path, "application/json", body, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read answer from the hub: %w", err)
	}
	if resp.StatusCode >= 300 {
		var st api.Status
		if json.Unmarshal(data, &st) == nil && st.Kind == "Status" {
			return &StatusError{Status: st}
		}
		return &StatusError{Status: api.Status{Code: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))}}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
}

// transportError says why a request got no answer, telling a hub that
// answered with a certificate this client does not trust (it was reached:
// the fix is the CA, not the address) from one that could not be reached.
func (c *Client) transportError(err error) error {
	err = unwrapURLError(err)
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		if len(c.opts.CAPEM) == 0 {
			return fmt.Errorf("the hub at %s answered, but its certificate is not trusted: %w. "+
				"No hub CA is configured, so the system's roots were used: give the hub's CA as certificate-authority-data "+
				"in the config (the admin.conf that hub serve writes in its data directory has it) "+
				"or with --certificate-authority {data-dir}/pki/ca.crt", c.base, err)
		}
		return fmt.Errorf("the hub at %s answered, but its certificate is not trusted: %w. "+
			"The CA this client checks it with (certificate-authority-data in the config, or --certificate-authority) "+
			"did not sign it: use the admin.conf of this hub (hub --config {data-dir}/admin.conf), "+
			"or give its {data-dir}/pki/ca.crt with --certificate-authority", c.base, err)
	case errors.As(err, &badHost):
		return fmt.Errorf("the hub at %s answered, but its certificate is not trusted: %w. "+
			"Use a name or address the certificate lists in --server, or add this one to it with hub serve --tls-san", c.base, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("the hub at %s answered, but its certificate is not trusted: %w", c.base, err)
	}
	if c.opts.UnreachableHint != "" {
		return fmt.Errorf("cannot reach the hub at %s: %w (%s)", c.base, err, c.opts.UnreachableHint)
	}
	return fmt.Errorf("cannot reach the hub at %s: %w", c.base, err)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
