package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client reads the inspect endpoint over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the endpoint at socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

// Info fetches GET /info.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var in Info
	return &in, c.get(ctx, "/info", &in)
}

// Pod fetches GET /pods/<ref>.
func (c *Client) Pod(ctx context.Context, ref string) (*Pod, error) {
	var p Pod
	return &p, c.get(ctx, "/pods/"+url.PathEscape(ref), &p)
}

// Container fetches GET /containers/<ref>.
func (c *Client) Container(ctx context.Context, ref string) (*Container, error) {
	var ct Container
	return &ct, c.get(ctx, "/containers/"+url.PathEscape(ref), &ct)
}

// Pods fetches GET /pods.
func (c *Client) Pods(ctx context.Context) ([]*Pod, error) {
	var ps []*Pod
	return ps, c.get(ctx, "/pods", &ps)
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://floe"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("floe inspect endpoint %s: %w (is the daemon running? see --inspect-socket)", c.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
