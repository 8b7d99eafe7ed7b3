package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Substatus names, as GPA's extension reports them (handler-contract.md
// §8.4), so existing tooling and the instance view read them unchanged.
const (
	SubAgentStatus       = "ProxyAgentStatus"
	SubConnectionSummary = "ProxyAgentConnectionSummary"
	SubFailedAuthSummary = "ProxyAgentFailedAuthenticationSummary"
)

// Limits of §8.4: top 100 connection summaries, top 50 failed
// authorizations, and 80 KB for the two summary messages together.
const (
	maxConnections   = 100
	maxFailedAuth    = 50
	maxSummaryBytes  = 80 * 1000
	maxAggregateSize = 8 << 20
)

// Aggregate is the agent's aggregate status document (agent.md §9), with
// the parts the handler reports kept as the agent wrote them.
type Aggregate struct {
	Timestamp   time.Time
	Version     string // proxyAgentStatus.version
	Overall     string // proxyAgentStatus.status: SUCCESS or ERROR
	AgentStatus json.RawMessage
	Connections []json.RawMessage
	FailedAuth  []json.RawMessage
}

// ReadAggregate parses the document from r.
func ReadAggregate(r io.Reader) (Aggregate, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAggregateSize+1))
	if err != nil {
		return Aggregate{}, fmt.Errorf("aggregate status: %w", err)
	}
	if len(data) > maxAggregateSize {
		return Aggregate{}, errors.New("aggregate status: larger than 8 MiB")
	}
	var doc struct {
		Timestamp        string            `json:"timestamp"`
		ProxyAgentStatus json.RawMessage   `json:"proxyAgentStatus"`
		Connections      []json.RawMessage `json:"proxyConnectionSummary"`
		FailedAuth       []json.RawMessage `json:"failedAuthenticateSummary"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return Aggregate{}, fmt.Errorf("aggregate status: %w", err)
	}
	if len(doc.ProxyAgentStatus) == 0 || string(doc.ProxyAgentStatus) == "null" {
		return Aggregate{}, errors.New("aggregate status: proxyAgentStatus is missing")
	}
	var head struct {
		Version string `json:"version"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(doc.ProxyAgentStatus, &head); err != nil {
		return Aggregate{}, fmt.Errorf("aggregate status: proxyAgentStatus: %w", err)
	}
	ts, err := parseTimestamp(doc.Timestamp)
	if err != nil {
		return Aggregate{}, fmt.Errorf("aggregate status: timestamp: %w", err)
	}
	return Aggregate{
		Timestamp: ts, Version: head.Version, Overall: head.Status,
		AgentStatus: compact(doc.ProxyAgentStatus), Connections: doc.Connections, FailedAuth: doc.FailedAuth,
	}, nil
}

// parseTimestamp accepts GPA's zone-less UTC form and RFC 3339.
func parseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a UTC time", s)
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// Check returns why the document cannot be reported as healthy: older than
// maxAge, from another agent version than the bundled one (an unfinished
// upgrade), or the agent's own ERROR. Nil means healthy.
func (a Aggregate) Check(now time.Time, maxAge time.Duration, bundledVersion string) error {
	if age := now.Sub(a.Timestamp); age > maxAge {
		return fmt.Errorf("the agent's status is %s old (written %s): the agent is not running or hangs; check `systemctl status msp-agent` and its log",
			age.Round(time.Second), a.Timestamp.Format(time.RFC3339))
	}
	if bundledVersion != "" && a.Version != bundledVersion {
		return fmt.Errorf("the running agent is version %q, the extension bundles %q: the upgrade has not finished", a.Version, bundledVersion)
	}
	if !strings.EqualFold(a.Overall, "SUCCESS") {
		return fmt.Errorf("the agent reports %s: %s", a.Overall, a.AgentStatus)
	}
	return nil
}

// Substatuses turns the document into the three substatuses of §8.4: the
// agent status object, and the top summaries by count, cut so the two
// summaries stay within 80 KB (the connection summary gives way first).
func (a Aggregate) Substatuses() []Substatus {
	conn := topByCount(a.Connections, maxConnections)
	failed := topByCount(a.FailedAuth, maxFailedAuth)
	if len(conn)+len(failed) > maxSummaryBytes {
		conn = fmt.Sprintf(`"connection summary omitted: the summaries exceed %d bytes"`, maxSummaryBytes)
		for k := maxFailedAuth; len(conn)+len(failed) > maxSummaryBytes; {
			k /= 2 // reaches 0, whose "[]" fits
			failed = topByCount(a.FailedAuth, k)
		}
	}
	return []Substatus{
		{Name: SubAgentStatus, State: Success, Message: string(a.AgentStatus)},
		{Name: SubConnectionSummary, State: Success, Message: conn},
		{Name: SubFailedAuthSummary, State: Success, Message: failed},
	}
}

// ErrorSubstatuses are the substatuses while the agent's status cannot be
// reported: each transitioning, code 4, carrying the error (§8.4).
func ErrorSubstatuses(err error) []Substatus {
	msg := err.Error()
	return []Substatus{
		{Name: SubAgentStatus, State: Transitioning, Code: 4, Message: msg},
		{Name: SubConnectionSummary, State: Transitioning, Code: 4, Message: msg},
		{Name: SubFailedAuthSummary, State: Transitioning, Code: 4, Message: msg},
	}
}

// topByCount returns the n entries with the highest "count" as a JSON
// array (stable for equal counts).
func topByCount(entries []json.RawMessage, n int) string {
	type ranked struct {
		raw   json.RawMessage
		count int64
	}
	rs := make([]ranked, 0, len(entries))
	for _, e := range entries {
		var c struct {
			Count int64 `json:"count"`
		}
		_ = json.Unmarshal(e, &c)
		rs = append(rs, ranked{compact(e), c.Count})
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].count > rs[j].count })
	if len(rs) > n {
		rs = rs[:n]
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r.raw)
	}
	b.WriteByte(']')
	return b.String()
}

// Tracker is the monitor's state machine (§8.4): start transitioning; one
// success ⇒ success; in success one failure ⇒ transitioning; in
// transitioning FailuresToError consecutive failures ⇒ error; in error one
// success ⇒ transitioning.
type Tracker struct {
	state    State
	failures int
}

// FailuresToError is about 5 minutes of failures at the 15 s interval.
const FailuresToError = 20

// Observe records one monitor round and returns the state to report.
func (t *Tracker) Observe(ok bool) State {
	if t.state == "" {
		t.state = Transitioning
	}
	if ok {
		t.failures = 0
		if t.state == Error {
			t.state = Transitioning
		} else {
			t.state = Success
		}
		return t.state
	}
	t.failures++
	switch t.state {
	case Success:
		t.state = Transitioning
	case Transitioning:
		if t.failures >= FailuresToError {
			t.state = Error
		}
	}
	return t.state
}
