package provision

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bit is one readiness bit (agent.md §3.1).
type Bit uint8

// Readiness bits; All is every one of them.
const (
	Redirector Bit = 1
	KeyLatch   Bit = 2
	Listener   Bit = 4
	All            = Redirector | KeyLatch | Listener
)

// moduleName is the status.tag prefix of each bit (agent.md §3.2).
func (b Bit) moduleName() string {
	switch b {
	case Redirector:
		return "ebpfProgramStatus"
	case KeyLatch:
		return "keyLatchStatus"
	case Listener:
		return "proxyListenerStatus"
	}
	return fmt.Sprintf("bit%d", b)
}

// DefaultTimeout is PROVISION_TIMEOUT (agent.md §3.1).
const DefaultTimeout = 120 * time.Second

// Options configure a Tracker.
type Options struct {
	// KeysDir receives provisioned.tag and status.tag ("" writes none).
	KeysDir string
	// Timeout is how long provisioning may take; 0 means DefaultTimeout.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Latched reports whether the secure channel state is latched (not
	// disabled or Unknown); nil means never.
	Latched func() bool
	// Notify wakes the key keeper when a not-finished query carries
	// x-ms-azure-notify (host-protocol.md §7.1); nil does nothing.
	Notify func()
	// Finished is called once per finish with the error text ("" = OK),
	// after the tag files were written; e.g. to copy it to /dev/console.
	Finished func(errText string)
}

// Tracker is the provisioning state. Its methods are safe for concurrent
// use.
type Tracker struct {
	opts Options

	mu       sync.Mutex
	start    time.Time
	bits     Bit
	messages map[Bit]string // why a bit is not set, for status.tag
	finished int64          // Unix nanoseconds; 0 = not finished
	errText  string
}

// New starts the provisioning timer.
func New(opts Options) *Tracker {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Tracker{opts: opts, start: opts.Now(), messages: make(map[Bit]string)}
}

// Set marks a bit ready. When all bits are set and provisioning has not
// finished, it finishes successfully.
func (t *Tracker) Set(b Bit) error {
	t.mu.Lock()
	t.bits |= b
	delete(t.messages, b)
	done := t.bits&All == All && t.finished == 0
	t.mu.Unlock()
	if done {
		return t.finish("")
	}
	return nil
}

// Fail records why a bit is not ready; the text appears in status.tag and
// in --status output if provisioning times out. It clears the bit.
func (t *Tracker) Fail(b Bit, msg string) {
	t.mu.Lock()
	t.bits &^= b
	t.messages[b] = msg
	t.mu.Unlock()
}

// Bits returns the bits set now.
func (t *Tracker) Bits() Bit {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bits
}

// Tick finishes provisioning with an error once the timeout has passed
// without every bit set. The daemon calls it periodically.
func (t *Tracker) Tick() error {
	t.mu.Lock()
	expired := t.finished == 0 && t.opts.Now().Sub(t.start) >= t.opts.Timeout
	var text string
	if expired {
		text = t.missingText()
	}
	t.mu.Unlock()
	if expired {
		return t.finish(text)
	}
	return nil
}

// missingText is status.tag's error: one line per missing bit.
func (t *Tracker) missingText() string {
	var b strings.Builder
	for _, bit := range []Bit{Redirector, KeyLatch, Listener} {
		if t.bits&bit != 0 {
			continue
		}
		msg := t.messages[bit]
		if msg == "" {
			msg = "not ready after " + t.opts.Timeout.String()
		}
		b.WriteString(bit.moduleName() + " - " + msg + "\r\n")
	}
	return b.String()
}

// Restart clears the key-latch bit, forgets the finish and restarts the
// timer: a notification while the channel is disabled or Unknown (the host
// may switch MSP on during first boot, agent.md §3.1).
func (t *Tracker) Restart() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bits &^= KeyLatch
	t.finished = 0
	t.errText = ""
	t.start = t.opts.Now()
}

func (t *Tracker) finish(errText string) error {
	now := t.opts.Now()
	t.mu.Lock()
	if t.finished != 0 {
		t.mu.Unlock()
		return nil
	}
	t.finished = now.UnixNano()
	t.errText = errText
	t.mu.Unlock()
	err := writeTags(t.opts.KeysDir, now, errText)
	if t.opts.Finished != nil {
		t.opts.Finished(errText)
	}
	return err
}

// Status is the answer to one provisioning query.
type Status struct {
	Finished     bool   `json:"finished"`
	ErrorMessage string `json:"errorMessage"`
}

// Query answers a query that started at timeTick (Unix nanoseconds):
// finished when provisioning finished at or after it, or when the channel
// is latched and provisioning finished at all (agent.md §3.3).
func (t *Tracker) Query(timeTick int64, notify bool) Status {
	latched := t.opts.Latched != nil && t.opts.Latched()
	t.mu.Lock()
	st := Status{
		Finished:     t.finished != 0 && (t.finished >= timeTick || latched),
		ErrorMessage: t.errText,
	}
	t.mu.Unlock()
	if !st.Finished {
		st.ErrorMessage = ""
		if notify && t.opts.Notify != nil {
			t.opts.Notify()
		}
	}
	return st
}

// Headers is what Serve needs of a request (rawhttp.Request has it).
type Headers interface {
	Get(name string) (string, bool)
}

// Request header names of the provisioning query (agent.md §3.3).
const (
	HeaderMetadata = "Metadata"
	HeaderTimeTick = "x-ms-azure-time-tick"
	HeaderNotify   = "x-ms-azure-notify"
)

// Serve answers GET /provision: 400 without a Metadata header, otherwise
// 200 with the JSON status. A missing or unreadable time tick counts as 0.
func (t *Tracker) Serve(h Headers) (status int, body []byte) {
	if _, ok := h.Get(HeaderMetadata); !ok {
		return 400, nil
	}
	tick := int64(0)
	if v, ok := h.Get(HeaderTimeTick); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			tick = n
		}
	}
	_, notify := h.Get(HeaderNotify)
	body, _ = json.Marshal(t.Query(tick, notify))
	return 200, body
}

// writeTags writes provisioned.tag (a timestamp) and status.tag (empty on
// success, otherwise the XML-escaped error text) into dir, 0600, each
// through a temporary file and a rename.
func writeTags(dir string, now time.Time, errText string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("provisioning files: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "provisioned.tag"), []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "status.tag"), []byte(html.EscapeString(errText)))
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
