package fakewaagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mspguest/msp/handler/internal/testcert"
	"github.com/mspguest/msp/manifest"
)

// Timeouts are waagent 2.15's per-command limits (§5.4).
var Timeouts = map[string]time.Duration{
	"install":   900 * time.Second,
	"enable":    300 * time.Second,
	"disable":   900 * time.Second,
	"update":    900 * time.Second,
	"uninstall": 300 * time.Second,
}

// Package is an extracted handler package: a directory holding
// HandlerManifest.json and the files it names.
type Package struct {
	Version string
	Dir     string
}

// Waagent is one fake guest agent with its Lib.Dir and log directory.
type Waagent struct {
	Lib  string // waagent's Lib.Dir (/var/lib/waagent)
	Log  string // Extension.LogDir (/var/log/azure)
	Name string // <Publisher>.<Type>
	Cert testcert.Cert
	// Env is added to every command's environment (after waagent's own,
	// as waagent merges its environment in), e.g. PATH and MSP_ROOT.
	Env []string
	// Timeouts override the package-level Timeouts when set.
	Timeouts map[string]time.Duration
	// Trace, when set, receives one line per command run.
	Trace func(format string, args ...any)
}

// New makes the directories and a tenant certificate in lib.
func New(lib, log, name string) (*Waagent, error) {
	for _, d := range []string{lib, log} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	cert, err := testcert.New(lib)
	if err != nil {
		return nil, err
	}
	return &Waagent{Lib: lib, Log: log, Name: name, Cert: cert}, nil
}

// Root is the handler root of a version.
func (w *Waagent) Root(version string) string {
	return filepath.Join(w.Lib, w.Name+"-"+version)
}

// LogFolder is the handler's version-less log folder.
func (w *Waagent) LogFolder() string { return filepath.Join(w.Log, w.Name) }

// Deploy extracts pkg into its handler root and writes
// HandlerEnvironment.json, as waagent does before the first command of a
// version (§5.2 step 1).
func (w *Waagent) Deploy(pkg Package) error {
	root := w.Root(pkg.Version)
	if err := copyTree(pkg.Dir, root); err != nil {
		return fmt.Errorf("extract package: %w", err)
	}
	for _, d := range []string{filepath.Join(root, "config"), filepath.Join(root, "status"), filepath.Join(w.LogFolder(), "events")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	env := []map[string]any{{
		"name": w.Name, "version": 1.0,
		"handlerEnvironment": map[string]string{
			"logFolder":            w.LogFolder(),
			"configFolder":         filepath.Join(root, "config"),
			"statusFolder":         filepath.Join(root, "status"),
			"heartbeatFile":        filepath.Join(root, "heartbeat.log"),
			"eventsFolder":         filepath.Join(w.LogFolder(), "events"),
			"eventsFolder_preview": filepath.Join(w.LogFolder(), "events"),
		},
	}}
	data, _ := json.Marshal(env)
	return os.WriteFile(filepath.Join(root, "HandlerEnvironment.json"), data, 0o644)
}

// WriteSettings writes config/<seq>.settings for a version: public as the
// object given, protected (when not nil) encrypted to the certificate. Nil
// public and protected write the empty file of a handler without settings.
func (w *Waagent) WriteSettings(version string, seq int, public, protected any) error {
	path := filepath.Join(w.Root(version), "config", strconv.Itoa(seq)+".settings")
	if public == nil && protected == nil {
		return os.WriteFile(path, nil, 0o600)
	}
	hs := map[string]any{"publicSettings": public, "protectedSettings": nil, "protectedSettingsCertThumbprint": nil}
	if protected != nil {
		plain, err := json.Marshal(protected)
		if err != nil {
			return err
		}
		enc, err := w.Cert.Encrypt(plain)
		if err != nil {
			return err
		}
		hs["protectedSettings"], hs["protectedSettingsCertThumbprint"] = enc, w.Cert.Thumbprint
	}
	data, err := json.Marshal(map[string]any{"runtimeSettings": []any{map[string]any{"handlerSettings": hs}}})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Result is one command's outcome.
type Result struct {
	Version, Verb string
	ExitCode      int
	TimedOut      bool
	Elapsed       time.Duration
	Output        string // stdout and stderr
}

func (r Result) String() string {
	return fmt.Sprintf("%s %s: exit %d in %s (timed out %v): %s", r.Version, r.Verb, r.ExitCode, r.Elapsed.Round(time.Millisecond), r.TimedOut, strings.TrimSpace(r.Output))
}

// Run runs one verb of a version's manifest with waagent's environment:
// ConfigSequenceNumber and the AZURE_GUEST_AGENT_* variables, plus extra
// (VERSION, AZURE_GUEST_AGENT_UPDATING_FROM_VERSION, … per §5.3).
func (w *Waagent) Run(version, verb string, seq int, extra map[string]string) (Result, error) {
	root := w.Root(version)
	res := Result{Version: version, Verb: verb}
	mf, err := os.ReadFile(filepath.Join(root, "HandlerManifest.json"))
	if err != nil {
		return res, err
	}
	line, err := manifest.Command(mf, verb)
	if err != nil {
		return res, err
	}
	line = strings.TrimPrefix(line, "/")
	env := []string{
		"ConfigSequenceNumber=" + strconv.Itoa(seq),
		"AZURE_GUEST_AGENT_EXTENSION_PATH=" + root,
		"AZURE_GUEST_AGENT_EXTENSION_VERSION=" + version,
		"AZURE_GUEST_AGENT_WIRE_PROTOCOL_ADDRESS=168.63.129.16",
		`AZURE_GUEST_AGENT_EXTENSION_SUPPORTED_FEATURES=[{"Key": "ExtensionTelemetryPipeline", "Value": "1.0"}]`,
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	env = append(env, w.Env...)
	// stdout/stderr go to a file, as waagent's do, so background children
	// that keep them open do not hold the command.
	out, err := os.CreateTemp("", "fakewaagent-out")
	if err != nil {
		return res, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command("/bin/sh", "-c", filepath.Join(root, line))
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	timeout := Timeouts[verb]
	if t, ok := w.Timeouts[verb]; ok {
		timeout = t
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		res.TimedOut = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	}
	res.Elapsed = time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		return res, err
	}
	_, _ = out.Seek(0, io.SeekStart)
	data, _ := io.ReadAll(out)
	res.Output = string(data)
	if w.Trace != nil {
		w.Trace("%s", res)
	}
	return res, nil
}

// Sequence is the commands of one waagent action, in order.
type Sequence []Result

// Failed returns the first failed command, if any.
func (s Sequence) Failed() (Result, bool) {
	for _, r := range s {
		if r.ExitCode != 0 || r.TimedOut {
			return r, true
		}
	}
	return Result{}, false
}

// FirstInstall: deploy, write the settings, install, enable (§5.2). The
// enable is skipped when install fails, as waagent does.
func (w *Waagent) FirstInstall(pkg Package, seq int, public, protected any) (Sequence, error) {
	if err := w.Deploy(pkg); err != nil {
		return nil, err
	}
	if err := w.WriteSettings(pkg.Version, seq, public, protected); err != nil {
		return nil, err
	}
	var s Sequence
	for _, verb := range []string{"install", "enable"} {
		r, err := w.Run(pkg.Version, verb, seq, map[string]string{"AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE": "NOT_RUN"})
		if err != nil {
			return s, err
		}
		s = append(s, r)
		if r.ExitCode != 0 {
			break
		}
	}
	return s, nil
}

// Enable writes the settings of seq (a new goal state) and runs enable.
func (w *Waagent) Enable(version string, seq int, public, protected any) (Result, error) {
	if err := w.WriteSettings(version, seq, public, protected); err != nil {
		return Result{}, err
	}
	return w.Run(version, "enable", seq, map[string]string{"AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE": "NOT_RUN"})
}

// Upgrade replays waagent's upgrade (§5.2): new package set up with the
// current settings; old disable; mrseq and status/* copied; new update;
// old uninstall; old directory deleted; new install; new enable. It stops
// at the first failure, as waagent does (continueOnUpdateFailure false).
func (w *Waagent) Upgrade(oldVersion string, pkg Package, seq int, public, protected any) (Sequence, error) {
	if err := w.Deploy(pkg); err != nil {
		return nil, err
	}
	if err := w.WriteSettings(pkg.Version, seq, public, protected); err != nil {
		return nil, err
	}
	var s Sequence
	run := func(version, verb string, extra map[string]string) bool {
		r, err := w.Run(version, verb, seq, extra)
		if err != nil {
			r = Result{Version: version, Verb: verb, ExitCode: -1, Output: err.Error()}
		}
		s = append(s, r)
		return r.ExitCode == 0 && !r.TimedOut
	}
	if !run(oldVersion, "disable", nil) {
		return s, nil
	}
	oldRoot, newRoot := w.Root(oldVersion), w.Root(pkg.Version)
	if data, err := os.ReadFile(filepath.Join(oldRoot, "mrseq")); err == nil {
		_ = os.WriteFile(filepath.Join(newRoot, "mrseq"), data, 0o600)
	}
	if err := copyTree(filepath.Join(oldRoot, "status"), filepath.Join(newRoot, "status")); err != nil {
		return s, err
	}
	if !run(pkg.Version, "update", map[string]string{
		"VERSION": pkg.Version, "AZURE_GUEST_AGENT_UPDATING_FROM_VERSION": oldVersion,
		"AZURE_GUEST_AGENT_DISABLE_CMD_EXIT_CODE": strconv.Itoa(s[0].ExitCode),
	}) {
		return s, nil
	}
	if !run(oldVersion, "uninstall", nil) {
		return s, nil
	}
	uninstallCode := strconv.Itoa(s[len(s)-1].ExitCode)
	if err := os.RemoveAll(oldRoot); err != nil {
		return s, err
	}
	extra := map[string]string{"AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE": uninstallCode}
	if !run(pkg.Version, "install", extra) {
		return s, nil
	}
	run(pkg.Version, "enable", extra)
	return s, nil
}

// Remove replays the removal of an enabled extension (§5.2): disable, then
// uninstall (its failure only logged), then the handler root deleted; a
// failing disable aborts the removal.
func (w *Waagent) Remove(version string, seq int) (Sequence, error) {
	var s Sequence
	r, err := w.Run(version, "disable", seq, nil)
	if err != nil {
		return s, err
	}
	s = append(s, r)
	if r.ExitCode != 0 {
		return s, nil
	}
	if r, err = w.Run(version, "uninstall", seq, nil); err != nil {
		return s, err
	}
	s = append(s, r)
	return s, os.RemoveAll(w.Root(version))
}

// Status is the part of status/<seq>.status waagent reads.
type Status struct {
	Operation string
	Status    string
	Code      int
	Message   string
	Substatus []Substatus
}

// Substatus is one substatus entry.
type Substatus struct {
	Name, Status, Message string
	Code                  int
}

// ReadStatus reads status/<seq>.status of a version, applying waagent's
// validation: an array, status and status.status present, status values
// from the four allowed.
func (w *Waagent) ReadStatus(version string, seq int) (Status, error) {
	data, err := os.ReadFile(filepath.Join(w.Root(version), "status", strconv.Itoa(seq)+".status"))
	if err != nil {
		return Status{}, err
	}
	if len(data) > 128<<10 {
		return Status{}, fmt.Errorf("status file of %d bytes exceeds 128 KiB", len(data))
	}
	var doc []struct {
		Status *struct {
			Operation        string `json:"operation"`
			Status           string `json:"status"`
			Code             int    `json:"code"`
			FormattedMessage struct {
				Message string `json:"message"`
			} `json:"formattedMessage"`
			Substatus []struct {
				Name             string `json:"name"`
				Status           string `json:"status"`
				Code             int    `json:"code"`
				FormattedMessage struct {
					Message string `json:"message"`
				} `json:"formattedMessage"`
			} `json:"substatus"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return Status{}, fmt.Errorf("malformed status file: %w", err)
	}
	if len(doc) == 0 || doc[0].Status == nil || doc[0].Status.Status == "" {
		return Status{}, fmt.Errorf("malformed status file: status.status missing: %s", data)
	}
	st := doc[0].Status
	allowed := map[string]bool{"transitioning": true, "warning": true, "error": true, "success": true}
	if !allowed[st.Status] {
		return Status{}, fmt.Errorf("status %q would be coerced to error", st.Status)
	}
	out := Status{Operation: st.Operation, Status: st.Status, Code: st.Code, Message: st.FormattedMessage.Message}
	for _, s := range st.Substatus {
		if !allowed[s.Status] {
			return Status{}, fmt.Errorf("substatus %s: status %q makes the file malformed", s.Name, s.Status)
		}
		out.Substatus = append(out.Substatus, Substatus{Name: s.Name, Status: s.Status, Code: s.Code, Message: s.FormattedMessage.Message})
	}
	return out, nil
}

// Heartbeat is the handler status waagent derives from heartbeat.log.
type Heartbeat struct {
	Status  string
	Message string
	Age     time.Duration
}

// ReadHeartbeat reads heartbeat.log of a version; an mtime older than
// 600 s is reported as waagent does ("Unresponsive").
func (w *Waagent) ReadHeartbeat(version string) (Heartbeat, error) {
	p := filepath.Join(w.Root(version), "heartbeat.log")
	info, err := os.Stat(p)
	if err != nil {
		return Heartbeat{}, fmt.Errorf("Failed to get heart beat file: %w", err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return Heartbeat{}, err
	}
	var doc []struct {
		Heartbeat struct {
			Status           string `json:"status"`
			FormattedMessage struct {
				Message string `json:"message"`
			} `json:"formattedMessage"`
		} `json:"heartbeat"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || len(doc) == 0 {
		return Heartbeat{}, fmt.Errorf("malformed heartbeat: %s", data)
	}
	hb := Heartbeat{Status: doc[0].Heartbeat.Status, Message: doc[0].Heartbeat.FormattedMessage.Message, Age: time.Since(info.ModTime())}
	if hb.Age > 600*time.Second {
		hb.Status = "Unresponsive"
	}
	return hb, nil
}

// copyTree copies a directory (files and modes; waagent also sets u+x).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm()|0o100)
	})
}
