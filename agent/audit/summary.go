package audit

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Summary windows of agent.md §7.2: 15-minute buckets kept for 4 hours.
const (
	bucketSeconds = 15 * 60
	bucketCount   = 4 * 60 / 15
	// maxKeysPerBucket bounds each set of each bucket: the command line
	// is the caller's to choose, so the number of keys is too.
	maxKeysPerBucket = 1000
)

// Summary is one item of proxyConnectionSummary or
// failedAuthenticateSummary in the status document (agent.md §9): the
// requests of the last 4 hours that share the §7.2 key (userName,
// clientIp, ip, port, processFullPath, processCmdLine, responseStatus).
// clientIp is part of the key but not of the item, as in §9; userGroups
// are those of the first request of the key.
type Summary struct {
	UserName        string   `json:"userName"`
	UserGroups      []string `json:"userGroups"`
	IP              string   `json:"ip"`
	Port            uint16   `json:"port"`
	ProcessFullPath string   `json:"processFullPath"`
	ProcessCmdLine  string   `json:"processCmdLine"`
	ResponseStatus  string   `json:"responseStatus"`
	Count           uint64   `json:"count"`
}

// Summaries are the two arrays of the status document. Each is sorted by
// count, largest first, and is empty (not null) when there is nothing.
type Summaries struct {
	// ProxyConnectionSummary counts the requests that were not denied by
	// authorization: allowed, exempt and audit-mode would-denies (all
	// forwarded), and requests rejected before or after authorization
	// (framing, limits, upstream failures), whose responseStatus tells
	// them apart.
	ProxyConnectionSummary []Summary `json:"proxyConnectionSummary"`
	// FailedAuthenticateSummary counts authorization failures: denies and
	// audit-mode would-denies.
	FailedAuthenticateSummary []Summary `json:"failedAuthenticateSummary"`
}

// summaryKey holds addresses and the status as values, so that counting
// a request of a known key allocates nothing.
type summaryKey struct {
	userName, exe, cmdline string
	client                 netip.Addr
	dest                   netip.AddrPort
	status                 int
}

type summaryItem struct {
	groups []string
	count  uint64
}

type bucket struct {
	start     int64 // unix seconds of the bucket's start; 0 when unused
	forwarded map[summaryKey]*summaryItem
	failed    map[summaryKey]*summaryItem
}

// summaries is a ring of buckets indexed by start time.
type summaries struct {
	mu       sync.Mutex
	buckets  [bucketCount]bucket
	overflow atomic.Uint64
}

func newSummaries() *summaries { return &summaries{} }

// add counts e in the bucket of now.
func (s *summaries) add(e *Entry, now time.Time) {
	toForwarded := e.Decision != DecisionDeny
	toFailed := e.Decision == DecisionDeny || e.Decision == DecisionAuditDeny
	k := summaryKey{userName: e.Caller.User, exe: e.Caller.Exe, cmdline: e.Caller.CmdLine,
		client: e.Client.Addr(), dest: e.Dest, status: e.Status}
	start := now.Unix() / bucketSeconds * bucketSeconds
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &s.buckets[now.Unix()/bucketSeconds%bucketCount]
	if b.start != start {
		b.start = start
		b.forwarded = make(map[summaryKey]*summaryItem)
		b.failed = make(map[summaryKey]*summaryItem)
	}
	if toForwarded {
		s.count(b.forwarded, k, e.Caller.Groups)
	}
	if toFailed {
		s.count(b.failed, k, e.Caller.Groups)
	}
}

func (s *summaries) count(set map[summaryKey]*summaryItem, k summaryKey, groups []string) {
	if it := set[k]; it != nil {
		it.count++
		return
	}
	if len(set) >= maxKeysPerBucket {
		s.overflow.Add(1)
		return
	}
	set[k] = &summaryItem{groups: slices.Clone(groups), count: 1}
}

// snapshot merges the buckets of the 4 hours up to now.
func (s *summaries) snapshot(now time.Time) Summaries {
	oldest := now.Unix()/bucketSeconds*bucketSeconds - (bucketCount-1)*bucketSeconds
	forwarded := make(map[summaryKey]*summaryItem)
	failed := make(map[summaryKey]*summaryItem)
	s.mu.Lock()
	for i := range s.buckets {
		b := &s.buckets[i]
		if b.start == 0 || b.start < oldest || b.start > now.Unix() {
			continue
		}
		merge(forwarded, b.forwarded)
		merge(failed, b.failed)
	}
	s.mu.Unlock()
	return Summaries{ProxyConnectionSummary: list(forwarded), FailedAuthenticateSummary: list(failed)}
}

func merge(dst, src map[summaryKey]*summaryItem) {
	for k, it := range src {
		if d := dst[k]; d != nil {
			d.count += it.count
		} else {
			dst[k] = &summaryItem{groups: it.groups, count: it.count}
		}
	}
}

func list(set map[summaryKey]*summaryItem) []Summary {
	out := make([]Summary, 0, len(set))
	for k, it := range set {
		groups := slices.Clone(it.groups)
		if groups == nil {
			groups = []string{}
		}
		var ip string
		if k.dest.IsValid() {
			ip = k.dest.Addr().String()
		}
		out = append(out, Summary{UserName: k.userName, UserGroups: groups, IP: ip, Port: k.dest.Port(),
			ProcessFullPath: k.exe, ProcessCmdLine: k.cmdline, ResponseStatus: responseStatus(k.status), Count: it.count})
	}
	slices.SortFunc(out, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.UserName, b.UserName),
			cmp.Compare(a.ProcessFullPath, b.ProcessFullPath), cmp.Compare(a.ProcessCmdLine, b.ProcessCmdLine),
			cmp.Compare(a.IP, b.IP), cmp.Compare(a.Port, b.Port), cmp.Compare(a.ResponseStatus, b.ResponseStatus))
	})
	return out
}

// responseStatus is the status line's code and reason ("200 OK").
func responseStatus(code int) string {
	if text := http.StatusText(code); text != "" {
		return strconv.Itoa(code) + " " + text
	}
	return strconv.Itoa(code)
}
