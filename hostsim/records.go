package hostsim

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim/hostsig"
	"github.com/mspguest/msp/hostsim/wire"
)

// Header is one received header, in wire order.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Record is what the emulator saw and decided for one request
// (GET /verifications, --verify-log). Signatures are shortened to their
// first 8 hex digits; bodies appear only as a SHA-256.
type Record struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Endpoint  string    `json:"endpoint"`
	Mode      string    `json:"mode"`
	Method    string    `json:"method"`
	RawTarget string    `json:"rawTarget"`
	Headers   []Header  `json:"headers"`
	// BodySHA256 is the lowercase hex SHA-256 of the de-chunked body.
	BodySHA256 string `json:"bodySHA256"`
	BodyLength int    `json:"bodyLength"`
	// Streamed is set for the exempt uploads (PUT /vmAgentLog, POST
	// /machine/?comp=telemetrydata): their body, up to 100 MB, was counted
	// and hashed as it arrived, never held whole.
	Streamed bool `json:"streamed,omitempty"`
	// Class is "signed" (must be signed in enforce mode), "exempt"
	// (host-protocol.md §8.8), "bootstrap" (status and key acquisition),
	// "attestation" (always verified with the key being attested) or
	// "unreadable" (refused by the HTTP reader; Reason is the reader's
	// code such as "bad-framing", and the request fields are empty).
	Class  string `json:"class"`
	Signed bool   `json:"signed"`
	// Valid means every check passed: signature, claims, date and, for
	// root-only endpoints, the isRoot claim.
	Valid bool `json:"valid"`
	// Reason names the first failed check ("" when Valid).
	Reason  string `json:"reason,omitempty"`
	KeyGUID string `json:"keyGuid,omitempty"`
	// IsRoot is the isRoot claim; null when the claims header is missing
	// or unreadable.
	IsRoot *bool `json:"isRoot"`
	// Status is the HTTP status returned; 0 when the connection was
	// dropped by an injected fault.
	Status int    `json:"status"`
	Fault  string `json:"fault,omitempty"`
}

var classNames = [...]string{classSigned: "signed", classExempt: "exempt", classBootstrap: "bootstrap", classAttestation: "attestation"}

// maxRecords bounds the in-memory log; the oldest records are dropped
// (the --verify-log file keeps everything).
const maxRecords = 100000

// recordLog is the ordered verification log. Guarded by Emulator.mu.
type recordLog struct {
	seq     uint64
	records []Record
	w       io.Writer
}

func (l *recordLog) reset() { l.records = nil }

// recordUnreadable records a request the reader refused (agent/rawhttp
// reason codes), so that tests see framing errors in /verifications too.
func (e *Emulator) recordUnreadable(ep hostproto.Endpoint, re *wire.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.appendRecord(Record{Endpoint: ep.String(), Mode: e.state.Modes.Of(ep).String(), Headers: []Header{}, Class: "unreadable", Reason: re.Reason, Status: re.Status})
}

func (e *Emulator) record(ep hostproto.Endpoint, in *received, d decision, status int, fault string) {
	req := in.req
	r := Record{
		Endpoint:   ep.String(),
		Mode:       d.mode.String(),
		Method:     req.Method,
		RawTarget:  req.Target,
		Headers:    make([]Header, len(req.Header)),
		BodySHA256: hex.EncodeToString(in.bodySHA[:]),
		BodyLength: int(in.bodyLen),
		Streamed:   in.streamed,
		Class:      classNames[d.class],
		Signed:     d.v.signed,
		Valid:      d.v.reason == "",
		Reason:     d.v.reason,
		KeyGUID:    d.v.keyGUID,
		IsRoot:     d.v.isRoot,
		Status:     status,
		Fault:      fault,
	}
	for i, h := range req.Header {
		v := strings.Trim(h.Value, " \t")
		if strings.EqualFold(h.Name, hostsig.AuthorizationName) {
			v = redactAuthorization(v)
		}
		r.Headers[i] = Header{Name: h.Name, Value: v}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.appendRecord(r)
}

// appendRecord numbers, stores and writes a record. Caller holds mu.
func (e *Emulator) appendRecord(r Record) {
	e.recs.seq++
	r.Seq = e.recs.seq
	r.Time = e.hostNow()
	if len(e.recs.records) >= maxRecords {
		e.recs.records = e.recs.records[1:]
	}
	e.recs.records = append(e.recs.records, r)
	if e.recs.w != nil {
		if b, err := json.Marshal(r); err == nil {
			e.recs.w.Write(append(b, '\n'))
		}
	}
	e.log.WithFields(map[string]any{
		"endpoint": r.Endpoint, "method": r.Method, "target": r.RawTarget, "mode": r.Mode,
		"class": r.Class, "reason": r.Reason, "keyGuid": r.KeyGUID, "status": r.Status,
	}).Debug("request")
}

// redactAuthorization keeps the scheme and guid and the first 8 hex digits
// of the signature: enough to correlate, useless to replay.
func redactAuthorization(v string) string {
	f := strings.Fields(v)
	if n := len(f); n > 0 && len(f[n-1]) > 8 && n > 1 {
		f[n-1] = f[n-1][:8] + "..."
		return strings.Join(f, " ")
	}
	if len(v) > 8 {
		return v[:8] + "..."
	}
	return v
}

// Verifications returns the records with Seq greater than since, in order.
func (e *Emulator) Verifications(since uint64) []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Record{}
	for _, r := range e.recs.records {
		if r.Seq > since {
			out = append(out, r)
		}
	}
	return out
}
