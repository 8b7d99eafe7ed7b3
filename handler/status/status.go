package status

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mspguest/msp/handler/henv"
)

// State is a status value waagent accepts (lower case).
type State string

// The only four states waagent accepts; anything else is coerced to error.
const (
	Transitioning State = "transitioning"
	Success       State = "success"
	Warning       State = "warning"
	Error         State = "error"
)

// MaxFileSize is the limit this package keeps a status file under (waagent
// truncates larger ones).
const MaxFileSize = 128 << 10

// Substatus is one entry of status.substatus.
type Substatus struct {
	Name    string
	State   State
	Code    int
	Message string
}

// Report is one status file's content.
type Report struct {
	Name      string // the extension, e.g. Contoso.Security.MspProxyAgentLinux
	Operation string // Install, Enable, …, CheckOSVersionSupport
	State     State
	Code      int
	Message   string
	// AppliedAt is configurationAppliedTime; zero omits it.
	AppliedAt time.Time
	Substatus []Substatus
}

type formatted struct {
	Lang    string `json:"lang"`
	Message string `json:"message"`
}

type subJSON struct {
	Name             string    `json:"name"`
	Status           State     `json:"status"`
	Code             int       `json:"code"`
	FormattedMessage formatted `json:"formattedMessage"`
}

type statusJSON struct {
	Name                     string    `json:"name"`
	Operation                string    `json:"operation"`
	ConfigurationAppliedTime string    `json:"configurationAppliedTime,omitempty"`
	Status                   State     `json:"status"`
	Code                     int       `json:"code"`
	FormattedMessage         formatted `json:"formattedMessage"`
	Substatus                []subJSON `json:"substatus,omitempty"`
}

type docJSON struct {
	Version      json.Number `json:"version"`
	TimestampUTC string      `json:"timestampUTC"`
	Status       statusJSON  `json:"status"`
}

const timeLayout = "2006-01-02T15:04:05Z"

// FileName is the status file of sequence number seq.
func FileName(statusFolder string, seq int) string {
	return filepath.Join(statusFolder, strconv.Itoa(seq)+".status")
}

// Marshal renders r as a status document. Messages are cut, longest
// first, until the document fits MaxFileSize.
func Marshal(r Report, now time.Time) ([]byte, error) {
	switch r.State {
	case Transitioning, Success, Warning, Error:
	default:
		return nil, fmt.Errorf("status %q is not one waagent accepts", r.State)
	}
	doc := docJSON{
		Version:      "1.0",
		TimestampUTC: now.UTC().Format(timeLayout),
		Status: statusJSON{
			Name: r.Name, Operation: r.Operation, Status: r.State, Code: r.Code,
			FormattedMessage: formatted{Lang: "en-US", Message: r.Message},
		},
	}
	if !r.AppliedAt.IsZero() {
		doc.Status.ConfigurationAppliedTime = r.AppliedAt.UTC().Format(timeLayout)
	}
	for _, s := range r.Substatus {
		switch s.State {
		case Transitioning, Success, Warning, Error:
		default:
			// An unknown substatus value makes waagent reject the whole file.
			return nil, fmt.Errorf("substatus %s: status %q is not one waagent accepts", s.Name, s.State)
		}
		doc.Status.Substatus = append(doc.Status.Substatus, subJSON{
			Name: s.Name, Status: s.State, Code: s.Code,
			FormattedMessage: formatted{Lang: "en-US", Message: s.Message},
		})
	}
	for {
		out, err := json.Marshal([]docJSON{doc})
		if err != nil {
			return nil, err
		}
		if len(out) <= MaxFileSize {
			return out, nil
		}
		msg := longest(&doc.Status)
		excess := len(out) - MaxFileSize + len(truncNote)
		if len(*msg) <= len(truncNote) {
			return nil, fmt.Errorf("status document of %d bytes cannot be cut to %d", len(out), MaxFileSize)
		}
		keep := max(len(*msg)-excess-16, 0) // JSON escaping may grow the text a little
		*msg = cut(*msg, keep) + truncNote
	}
}

const truncNote = " …(truncated)"

func longest(s *statusJSON) *string {
	p := &s.FormattedMessage.Message
	for i := range s.Substatus {
		if m := &s.Substatus[i].FormattedMessage.Message; len(*m) > len(*p) {
			p = m
		}
	}
	return p
}

// cut returns at most n bytes of s, not splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Write writes <statusFolder>/<seq>.status atomically.
func Write(statusFolder string, seq int, r Report, now time.Time) error {
	data, err := Marshal(r, now)
	if err != nil {
		return err
	}
	return henv.WriteFileAtomic(FileName(statusFolder, seq), data, 0o644)
}

// WriteHeartbeat writes the heartbeat file waagent reads when the
// manifest says reportHeartbeat: Ready or NotReady and a message, which
// waagent shows verbatim as the handler's message.
func WriteHeartbeat(path string, ready bool, message string) error {
	state := "NotReady"
	if ready {
		state = "Ready"
	}
	type hb struct {
		Status           string    `json:"status"`
		Code             int       `json:"code"`
		FormattedMessage formatted `json:"formattedMessage"`
	}
	doc := []struct {
		Version   json.Number `json:"version"`
		Heartbeat hb          `json:"heartbeat"`
	}{{Version: "1.0", Heartbeat: hb{Status: state, FormattedMessage: formatted{Lang: "en-US", Message: cut(message, 4096)}}}}
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return henv.WriteFileAtomic(path, data, 0o644)
}
