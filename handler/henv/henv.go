package henv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the handler environment file waagent writes in the root.
const FileName = "HandlerEnvironment.json"

// Env is the handler's environment: where waagent wants its files.
type Env struct {
	Root          string // the handler root, <LIB>/<Name>-<Ver>
	Name          string // <Publisher>.<Type>
	LogFolder     string
	ConfigFolder  string
	StatusFolder  string
	HeartbeatFile string
	EventsFolder  string // empty when the telemetry pipeline is off
}

// LibDir is waagent's Lib.Dir, the root's parent: certificates and the
// upgrade marker live there.
func (e Env) LibDir() string { return filepath.Dir(e.Root) }

type fileEntry struct {
	Name               string `json:"name"`
	HandlerEnvironment struct {
		LogFolder     string `json:"logFolder"`
		ConfigFolder  string `json:"configFolder"`
		StatusFolder  string `json:"statusFolder"`
		HeartbeatFile string `json:"heartbeatFile"`
		EventsFolder  string `json:"eventsFolder"`
		EventsPreview string `json:"eventsFolder_preview"`
	} `json:"handlerEnvironment"`
}

// FindRoot returns the handler root: $AZURE_GUEST_AGENT_EXTENSION_PATH when
// set, else the directory of exe or its parent (binary in bin/), whichever
// holds HandlerEnvironment.json.
func FindRoot(getenv func(string) string, exe string) (string, error) {
	if p := getenv("AZURE_GUEST_AGENT_EXTENSION_PATH"); p != "" {
		if _, err := os.Stat(filepath.Join(p, FileName)); err == nil {
			return p, nil
		}
	}
	abs, err := filepath.Abs(exe)
	if err != nil {
		return "", fmt.Errorf("handler environment: %w", err)
	}
	dir := filepath.Dir(abs)
	tried := []string{dir, filepath.Dir(dir)}
	for _, d := range tried {
		if _, err := os.Stat(filepath.Join(d, FileName)); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("handler environment: no %s in %s (waagent writes it in the handler root; set AZURE_GUEST_AGENT_EXTENSION_PATH)",
		FileName, strings.Join(tried, " or "))
}

// Load reads <root>/HandlerEnvironment.json. waagent may be rewriting it,
// so a parse failure is retried for up to about 3 s.
func Load(root string) (Env, error) {
	path := filepath.Join(root, FileName)
	var err error
	for delay := 100 * time.Millisecond; ; delay *= 2 {
		var env Env
		if env, err = load(root, path); err == nil {
			return env, nil
		}
		if errors.Is(err, os.ErrNotExist) || delay > 2*time.Second {
			return Env{}, err
		}
		time.Sleep(delay)
	}
}

func load(root, path string) (Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Env{}, fmt.Errorf("handler environment: %w", err)
	}
	var entries []fileEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return Env{}, fmt.Errorf("handler environment %s: %w", path, err)
	}
	if len(entries) != 1 {
		return Env{}, fmt.Errorf("handler environment %s: want an array of one object, got %d", path, len(entries))
	}
	h := entries[0].HandlerEnvironment
	env := Env{
		Root: root, Name: entries[0].Name,
		LogFolder: h.LogFolder, ConfigFolder: h.ConfigFolder, StatusFolder: h.StatusFolder,
		HeartbeatFile: h.HeartbeatFile, EventsFolder: h.EventsFolder,
	}
	if env.EventsFolder == "" {
		env.EventsFolder = h.EventsPreview
	}
	for _, f := range []struct{ name, v string }{
		{"logFolder", env.LogFolder}, {"configFolder", env.ConfigFolder},
		{"statusFolder", env.StatusFolder}, {"heartbeatFile", env.HeartbeatFile},
	} {
		if f.v == "" {
			return Env{}, fmt.Errorf("handler environment %s: handlerEnvironment.%s is missing", path, f.name)
		}
	}
	return env, nil
}

// SequenceNumber returns the command's sequence number: ConfigSequenceNumber
// when set (waagent ≥ 2.2.44 sets it for every command), else the newest
// <n>.settings by modification time (ties: the highest number), else 0.
func SequenceNumber(getenv func(string) string, configFolder string) (int, error) {
	if v := getenv("ConfigSequenceNumber"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("ConfigSequenceNumber %q is not a sequence number", v)
		}
		return n, nil
	}
	entries, err := os.ReadDir(configFolder)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("sequence number: %w", err)
	}
	best, bestTime := -1, time.Time{}
	for _, e := range entries {
		n, ok := settingsNumber(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		mt := info.ModTime()
		if best < 0 || mt.After(bestTime) || (mt.Equal(bestTime) && n > best) {
			best, bestTime = n, mt
		}
	}
	if best < 0 {
		return 0, nil
	}
	return best, nil
}

func settingsNumber(name string) (int, bool) {
	s, ok := strings.CutSuffix(name, ".settings")
	if !ok || s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// Marker records the last settings whose one-shot work was done: mrseq
// (plain decimal, migrated by waagent on upgrade) and settings.sha256 in
// the root.
type Marker struct {
	Seq  int    // -1 when none
	Hash string // empty when none
}

const (
	mrseqFile = "mrseq"
	hashFile  = "settings.sha256"
)

// ReadMarker reads the marker; a missing or unreadable one is {-1, ""}.
func ReadMarker(root string) Marker {
	m := Marker{Seq: -1}
	if data, err := os.ReadFile(filepath.Join(root, mrseqFile)); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			m.Seq = n
		}
	}
	if data, err := os.ReadFile(filepath.Join(root, hashFile)); err == nil {
		m.Hash = strings.TrimSpace(string(data))
	}
	return m
}

// Done reports that the one-shot work for (seq, hash) was already done.
func (m Marker) Done(seq int, hash string) bool { return m.Seq == seq && m.Hash == hash }

// WriteMarker records (seq, hash), each file atomically.
func WriteMarker(root string, seq int, hash string) error {
	if err := WriteFileAtomic(filepath.Join(root, hashFile), []byte(hash), 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(root, mrseqFile), []byte(strconv.Itoa(seq)), 0o600)
}

// ClearMarker removes the marker (resetstate).
func ClearMarker(root string) error {
	for _, f := range []string{mrseqFile, hashFile} {
		if err := os.Remove(filepath.Join(root, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so a reader sees the old or the new content.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Chmod(tmp, perm)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
