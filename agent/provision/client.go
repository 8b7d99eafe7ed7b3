package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Exit codes of `msp-agent --status` (agent.md §3.4).
const (
	ExitFinished    = 0 // finished without error
	ExitNotFinished = 1 // not finished in time, or the agent unreachable
	ExitFailed      = 2 // finished with an error
)

// retryEvery is the pause between queries (agent.md §3.4).
const retryEvery = 100 * time.Millisecond

// WaitResult is what `--status` prints and exits with.
type WaitResult struct {
	Code    int
	Message string
}

// Wait queries GET http://<listen>/provision until provisioning finished
// or wait has passed, retrying every 100 ms, connection errors included
// (the agent may be restarting: GPA #287). The first query carries
// x-ms-azure-notify. wait 0 queries once.
func Wait(ctx context.Context, listen string, wait time.Duration) WaitResult {
	start := time.Now()
	deadline := start.Add(wait)
	client := &http.Client{Transport: &http.Transport{
		Proxy:             nil, // never an HTTP proxy from the environment
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}, Timeout: 5 * time.Second}
	last := "agent not reachable"
	for attempt := 0; ; attempt++ {
		st, err := query(ctx, client, listen, start.UnixNano(), attempt == 0)
		switch {
		case err != nil:
			last = err.Error()
		case st.Finished && st.ErrorMessage != "":
			return WaitResult{Code: ExitFailed, Message: st.ErrorMessage}
		case st.Finished:
			return WaitResult{Code: ExitFinished, Message: "provisioning finished"}
		default:
			last = "provisioning not finished"
		}
		if !time.Now().Add(retryEvery).Before(deadline) {
			return WaitResult{Code: ExitNotFinished, Message: last}
		}
		select {
		case <-ctx.Done():
			return WaitResult{Code: ExitNotFinished, Message: ctx.Err().Error()}
		case <-time.After(retryEvery):
		}
	}
}

func query(ctx context.Context, c *http.Client, listen string, tick int64, notify bool) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/provision", nil)
	if err != nil {
		return Status{}, fmt.Errorf("provisioning query: %w", err)
	}
	req.Header.Set(HeaderMetadata, "true")
	req.Header.Set(HeaderTimeTick, strconv.FormatInt(tick, 10))
	if notify {
		req.Header.Set(HeaderNotify, "true")
	}
	resp, err := c.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("agent not reachable at %s: %w", listen, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Status{}, fmt.Errorf("provisioning query: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("provisioning query: HTTP %d from %s", resp.StatusCode, listen)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return Status{}, fmt.Errorf("provisioning query: answer is not the provisioning JSON: %w", err)
	}
	return st, nil
}

// Query asks the agent at listen once, without the wake-up header (a
// health check must not restart provisioning): finished means the agent
// provisioned and holds its key (or the host needs none) now.
func Query(ctx context.Context, listen string) (Status, error) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}, Timeout: 5 * time.Second}
	return query(ctx, c, listen, time.Now().UnixNano(), false)
}
