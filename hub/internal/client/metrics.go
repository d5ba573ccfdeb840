package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

const metricsPath = "/apis/" + api.MetricsAPIVersion

// NodeMetrics returns the latest usage of every node that has a recent
// sample.
func (c *Client) NodeMetrics(ctx context.Context) ([]api.NodeMetrics, error) {
	var list api.NodeMetricsList
	if err := c.do(ctx, http.MethodGet, metricsPath+"/nodes", "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// PodMetrics returns the latest usage of the pods in namespace ("" for
// all), optionally only those on node.
func (c *Client) PodMetrics(ctx context.Context, namespace, node string) ([]api.PodMetrics, error) {
	path := metricsPath + "/pods"
	if namespace != "" {
		path = metricsPath + "/namespaces/" + url.PathEscape(namespace) + "/pods"
	}
	if node != "" {
		path += "?" + url.Values{"fieldSelector": {"spec.nodeName=" + node}}.Encode()
	}
	var list api.PodMetricsList
	if err := c.do(ctx, http.MethodGet, path, "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// NodeSeries returns the samples the hub kept for node over the last
// since, restricted to the metrics named (all when none).
func (c *Client) NodeSeries(ctx context.Context, node string, since time.Duration, metrics []string) (*api.NodeMetricsSeries, error) {
	q := url.Values{"since": {since.String()}}
	if len(metrics) > 0 {
		q.Set("metric", strings.Join(metrics, ","))
	}
	var s api.NodeMetricsSeries
	if err := c.do(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(node)+"/metrics?"+q.Encode(), "", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// LogOptions are Kubernetes' log options.
type LogOptions struct {
	Container  string
	Follow     bool
	Previous   bool
	TailLines  *int64
	Since      time.Duration
	LimitBytes int64
}

// Logs copies a container's output to w until it ends or, with Follow,
// until ctx ends.
func (c *Client) Logs(ctx context.Context, namespace, pod string, o LogOptions, w io.Writer) error {
	q := url.Values{}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	if o.Follow {
		q.Set("follow", "true")
	}
	if o.Previous {
		q.Set("previous", "true")
	}
	if o.TailLines != nil {
		q.Set("tailLines", strconv.FormatInt(*o.TailLines, 10))
	}
	if o.Since > 0 {
		q.Set("sinceSeconds", strconv.FormatInt(int64((o.Since+time.Second-1)/time.Second), 10))
	}
	if o.LimitBytes > 0 {
		q.Set("limitBytes", strconv.FormatInt(o.LimitBytes, 10))
	}
	path := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(pod) + "/log"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	// A followed log has no end: no client timeout, ctx stops it.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var st api.Status
		if json.Unmarshal(data, &st) == nil && st.Kind == "Status" {
			return &StatusError{Status: st}
		}
		return &StatusError{Status: api.Status{Code: resp.StatusCode, Message: fmt.Sprintf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(data)))}}
	}
	if _, err := io.Copy(w, resp.Body); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read logs from the hub: %w", err)
	}
	return nil
}
