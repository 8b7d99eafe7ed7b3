package status

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mspguest/msp/agent/audit"
)

// Module statuses (agent.md §2).
const (
	Unknown = "UNKNOWN"
	Running = "RUNNING"
	Stopped = "STOPPED"
)

// Overall statuses.
const (
	Success = "SUCCESS"
	Error   = "ERROR"
)

// Module is one module's status and a message a person can act on.
type Module struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// States are the secure channel's facts in keyLatchStatus.
type States struct {
	SecureChannelState string `json:"secureChannelState"`
	KeyGUID            string `json:"keyGuid"`
	WireServerRuleID   string `json:"wireServerRuleId"`
	IMDSRuleID         string `json:"imdsRuleId"`
	HostGARuleID       string `json:"hostGARuleId"`
	KeyIncarnationID   string `json:"keyIncarnationId"`
	// Project additions (allowed inside states, §9).
	EffectiveModes string `json:"effectiveModes,omitempty"`
	KeyLatchedAt   string `json:"keyLatchedAt,omitempty"`
}

// KeyLatch is keyLatchStatus: a module with states.
type KeyLatch struct {
	Module
	States States `json:"states"`
}

// ProxyAgent is proxyAgentStatus.
type ProxyAgent struct {
	Version               string   `json:"version"`
	Status                string   `json:"status"`
	MonitorStatus         Module   `json:"monitorStatus"`
	KeyLatchStatus        KeyLatch `json:"keyLatchStatus"`
	EBPFProgramStatus     Module   `json:"ebpfProgramStatus"`
	ProxyListenerStatus   Module   `json:"proxyListenerStatus"`
	TelemetryLoggerStatus Module   `json:"telemetryLoggerStatus"`
	ProxyConnectionsCount int64    `json:"proxyConnectionsCount"`
}

// Document is status.json and the /gpa-aggregated-status answer.
type Document struct {
	Timestamp        string          `json:"timestamp"`
	ProxyAgentStatus ProxyAgent      `json:"proxyAgentStatus"`
	ProxyConnections []audit.Summary `json:"proxyConnectionSummary"`
	FailedAuthorize  []audit.Summary `json:"failedAuthenticateSummary"`
}

// TimestampLayout is GPA's timestamp: UTC, milliseconds, no zone.
const TimestampLayout = "2006-01-02T15:04:05.000"

// Overall is ERROR unless the key keeper, the redirector and the
// listener all run (agent.md §2).
func Overall(keyLatch, ebpf, listener Module) string {
	if keyLatch.Status == Running && ebpf.Status == Running && listener.Status == Running {
		return Success
	}
	return Error
}

// New fills a document's timestamp, overall status and summaries; the
// caller fills the modules.
func New(now time.Time, pa ProxyAgent, sums audit.Summaries) Document {
	pa.Status = Overall(pa.KeyLatchStatus.Module, pa.EBPFProgramStatus, pa.ProxyListenerStatus)
	d := Document{
		Timestamp:        now.UTC().Format(TimestampLayout),
		ProxyAgentStatus: pa,
		ProxyConnections: sums.ProxyConnectionSummary,
		FailedAuthorize:  sums.FailedAuthenticateSummary,
	}
	// Arrays, never null: consumers index into them.
	if d.ProxyConnections == nil {
		d.ProxyConnections = []audit.Summary{}
	}
	if d.FailedAuthorize == nil {
		d.FailedAuthorize = []audit.Summary{}
	}
	return d
}

// Marshal renders the document.
func (d *Document) Marshal() ([]byte, error) {
	return json.Marshal(d)
}

// FileName is the document's name in the log directory.
const FileName = "status.json"

// WriteFile writes the document to path atomically (temporary file,
// fsync, rename), mode 0640.
func (d *Document) WriteFile(path string) error {
	data, err := d.Marshal()
	if err != nil {
		return fmt.Errorf("status document: %w", err)
	}
	return writeAtomic(path, data, 0o640)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return nil
}

// ReadFile reads a status document (the extension's monitor, mspctl).
func ReadFile(path string) (Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Document{}, err
	}
	var d Document
	if err := json.Unmarshal(data, &d); err != nil {
		return Document{}, fmt.Errorf("status document %s: %w", path, err)
	}
	return d, nil
}
