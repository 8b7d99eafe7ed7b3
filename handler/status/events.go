package status

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Event levels of the telemetry pipeline.
const (
	LevelError         = "Error"
	LevelWarning       = "Warning"
	LevelInformational = "Informational"
)

// Events writes telemetry events for waagent's Extension Telemetry
// Pipeline: one file <nanoseconds>.json per event in Folder. A zero Events
// (no eventsFolder) drops them.
type Events struct {
	Folder      string
	Version     string // the handler version (AZURE_GUEST_AGENT_EXTENSION_VERSION)
	OperationID string // one id per command; empty means a fresh one
	Now         func() time.Time
}

// maxMessage is the pipeline's limit on Message.
const maxMessage = 3072

// Emit writes one event. Message must not hold secrets: waagent sends it
// off the machine.
func (e *Events) Emit(task, level, message string) error {
	if e == nil || e.Folder == "" {
		return nil
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	if e.OperationID == "" {
		var b [16]byte
		rand.Read(b[:])
		e.OperationID = hex.EncodeToString(b[:])
	}
	if message == "" {
		message = task
	}
	pid := strconv.Itoa(os.Getpid())
	t := now().UTC()
	ev := map[string]string{
		"Version":     e.Version,
		"Timestamp":   t.Format("2006-01-02T15:04:05.000Z"),
		"TaskName":    task,
		"EventLevel":  level,
		"Message":     cut(message, maxMessage),
		"EventPid":    pid,
		"EventTid":    pid,
		"OperationId": e.OperationID,
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.Folder, 0o700); err != nil {
		return fmt.Errorf("events folder: %w", err)
	}
	// waagent collects ^\d+\.json$ and deletes what it read: write under a
	// name it ignores, then rename.
	name := strconv.FormatInt(t.UnixNano(), 10)
	tmp := filepath.Join(e.Folder, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	final := filepath.Join(e.Folder, name+".json")
	for i := 1; fileExists(final); i++ {
		final = filepath.Join(e.Folder, name+strconv.Itoa(i)+".json")
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
