package learn

import (
	"sort"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/hostproto"
)

// Example is one request a candidate policy would deny.
type Example struct {
	Method   string `json:"method"`
	Target   string `json:"target"`
	Reason   string `json:"reason"`
	Recorded string `json:"recorded"` // the decision in the log
	Source   string `json:"source"`   // file:line
}

// CallerImpact is the replay's outcome for one caller on one endpoint.
type CallerImpact struct {
	Endpoint string `json:"endpoint"`
	User     string `json:"user"`
	Exe      string `json:"exe"`
	UID      uint32 `json:"uid"`
	Allowed  int    `json:"allowed"`
	Denied   int    `json:"denied"`
	// Breaks counts denied requests that the agent forwarded when they
	// were recorded: what enforcing the candidate would break.
	Breaks   int       `json:"breaks"`
	Examples []Example `json:"examples,omitempty"`
}

// Impact is the outcome of a replay.
type Impact struct {
	Replayed int `json:"replayed"`
	Allowed  int `json:"allowed"`
	Denied   int `json:"denied"`
	// Breaks counts denied requests that were forwarded when recorded.
	Breaks int `json:"breaks"`
	// NotReplayed counts records the request reader refused before
	// authorization (decision "rejected"): there is nothing to replay.
	NotReplayed int            `json:"notReplayed"`
	Callers     []CallerImpact `json:"callers"`
}

// maxExamples is how many denied requests are shown per caller.
const maxExamples = 3

// Replay decides every recorded request of ep's item (WireServer's covers
// HostGAPlugin) with the candidate item compiled by the agent's own
// authz, as if the endpoint were enforced.
func Replay(item hostproto.AuthorizationItem, recs []Record, ep hostproto.Endpoint) Impact {
	item.Mode = hostproto.ModeEnforce.String()
	snap := authz.Compile(item)
	type key struct {
		endpoint, user, exe string
		uid                 uint32
	}
	byCaller := map[key]*CallerImpact{}
	var imp Impact
	for _, r := range recs {
		if !endpointOf(r.Endpoint, ep) {
			continue
		}
		if r.Decision == audit.DecisionRejected {
			imp.NotReplayed++
			continue
		}
		rep, err := hostproto.ParseEndpoint(r.Endpoint)
		if err != nil {
			imp.NotReplayed++
			continue
		}
		d := snap.Decide(authz.Request{Endpoint: rep, Method: r.Method, Target: r.Target}, callerOf(r.Caller))
		k := key{r.Endpoint, r.Caller.User, r.Caller.Exe, r.Caller.UID}
		c := byCaller[k]
		if c == nil {
			c = &CallerImpact{Endpoint: r.Endpoint, User: r.Caller.User, Exe: r.Caller.Exe, UID: r.Caller.UID}
			byCaller[k] = c
		}
		imp.Replayed++
		if d.Forward() {
			imp.Allowed++
			c.Allowed++
			continue
		}
		imp.Denied++
		c.Denied++
		if r.Decision != audit.DecisionDeny {
			imp.Breaks++
			c.Breaks++
		}
		if len(c.Examples) < maxExamples {
			c.Examples = append(c.Examples, Example{
				Method: r.Method, Target: r.Target, Reason: string(d.Reason), Recorded: r.Decision, Source: r.Source,
			})
		}
	}
	for _, c := range byCaller {
		imp.Callers = append(imp.Callers, *c)
	}
	sort.Slice(imp.Callers, func(i, j int) bool {
		a, b := imp.Callers[i], imp.Callers[j]
		if a.Endpoint != b.Endpoint {
			return a.Endpoint < b.Endpoint
		}
		if a.User != b.User {
			return a.User < b.User
		}
		if a.Exe != b.Exe {
			return a.Exe < b.Exe
		}
		return a.UID < b.UID
	})
	return imp
}

// callerOf rebuilds the matcher's view of a recorded caller.
func callerOf(c audit.Caller) authz.Caller {
	return authz.Caller{
		UID:         c.UID,
		UserName:    c.User,
		Groups:      c.Groups,
		ExePath:     c.Exe,
		ProcessName: c.Process,
		PID:         c.PID,
		Root:        c.Root,
	}
}
