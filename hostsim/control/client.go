package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mspguest/msp/hostsim"
)

// Client talks to one emulator's control API.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client for the control API at addr (host:port). A nil hc
// uses a client with a 10 s timeout.
func New(addr string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: "http://" + addr, hc: hc}
}

// Error is a control API answer other than 200.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("hostsim control: status %d: %s", e.Status, e.Message)
}

// State returns the current state and what the emulator derived from it.
func (c *Client) State(ctx context.Context) (*hostsim.StateView, error) {
	var v hostsim.StateView
	return &v, c.do(ctx, "GET", "/state", nil, &v)
}

// SetState merges p into the state and returns the result.
func (c *Client) SetState(ctx context.Context, p hostsim.Patch) (*hostsim.StateView, error) {
	var v hostsim.StateView
	return &v, c.do(ctx, "POST", "/state", p, &v)
}

// SetFault installs an endpoint's fault (kind "none" clears it) and returns
// the active faults.
func (c *Client) SetFault(ctx context.Context, f hostsim.Fault) ([]hostsim.Fault, error) {
	var out []hostsim.Fault
	return out, c.do(ctx, "POST", "/faults", f, &out)
}

// Verifications returns the records with seq greater than since (0 for
// all), in the order the requests were received.
func (c *Client) Verifications(ctx context.Context, since uint64) ([]hostsim.Record, error) {
	var out []hostsim.Record
	return out, c.do(ctx, "GET", "/verifications?since="+strconv.FormatUint(since, 10), nil, &out)
}

// Reset restores the start-up state and forgets keys, faults and records.
func (c *Client) Reset(ctx context.Context) error {
	return c.do(ctx, "POST", "/reset", nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("hostsim control: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("hostsim control: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("hostsim control: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("hostsim control: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != 200 {
		var ce hostsim.ControlError
		if json.Unmarshal(data, &ce) != nil || ce.Error == "" {
			ce.Error = string(data)
		}
		return &Error{Status: resp.StatusCode, Message: ce.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("hostsim control: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}
