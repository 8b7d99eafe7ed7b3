package config

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// Load reads the configuration file at path. An empty path means
// DefaultPath. A missing DefaultPath means the defaults (Path ""); any
// other missing file is an error, as are a directory, an unreadable file
// and every problem Parse reports (the *Error then names the file).
func Load(path string) (*Config, error) {
	_, c, err := load(path, DefaultPath)
	return c, err
}

// load is Load with the default path as a parameter; it also returns the
// content hash (of the error text when the file could not be read).
func load(path, defaultPath string) ([sha256.Size]byte, *Config, error) {
	if path == "" {
		path = defaultPath
	}
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) && path == defaultPath {
		c := Default()
		return c.Hash, c, nil
	}
	if err != nil {
		return sha256.Sum256([]byte(err.Error())), nil, err
	}
	c, err := Parse(data)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = path
		}
		return sha256.Sum256(data), nil, err
	}
	c.Path = path
	return c.Hash, c, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config %s: %w: create it or leave --config out for the defaults", path, err)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{File: path, Path: "$", Message: "not a regular file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return data, nil
}

// Watcher keeps the last good configuration of one file and reloads it
// when the file changes (Check, Run) or on demand (Reload, for SIGHUP). A
// new file that fails to load is reported and the last good configuration
// stays in force. Safe for concurrent use.
type Watcher struct {
	path        string
	defaultPath string

	mu      sync.Mutex
	current *Config
	stamp   fileStamp // of the file last read
	badHash [sha256.Size]byte
	badErr  error // the last reported failure, for its content hash
}

// fileStamp is the cheap change detector: a change of any field triggers a
// read, and the content hash then decides.
type fileStamp struct {
	exists     bool
	size       int64
	mtime      int64
	ctime      int64
	ino, dev   uint64
	readFailed bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{readFailed: !errors.Is(err, fs.ErrNotExist)}
	}
	st := fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ctime = s.Ctim.Nano()
		st.ino, st.dev = s.Ino, uint64(s.Dev)
	}
	return st
}

// NewWatcher loads path (as Load does) and returns a watcher holding it.
func NewWatcher(path string) (*Watcher, error) { return newWatcher(path, DefaultPath) }

func newWatcher(path, defaultPath string) (*Watcher, error) {
	if path == "" {
		path = defaultPath
	}
	st := stampOf(path)
	_, c, err := load(path, defaultPath)
	if err != nil {
		return nil, err
	}
	return &Watcher{path: path, defaultPath: defaultPath, current: c, stamp: st}, nil
}

// Current returns the configuration in force.
func (w *Watcher) Current() *Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Check reloads the file if its size, times or inode changed since the
// last read. It returns the new configuration when the content changed
// and is valid (nil otherwise), and the error when the changed content is
// invalid; the same invalid content is reported once.
func (w *Watcher) Check() (*Config, error) {
	st := stampOf(w.path)
	w.mu.Lock()
	same := st == w.stamp && !st.readFailed
	w.mu.Unlock()
	if same {
		return nil, nil
	}
	return w.load(st, false)
}

// Reload reads the file now (SIGHUP). It returns the new configuration if
// the content changed and is valid, nil if it is unchanged, or the error;
// on error the last good configuration stays in force.
func (w *Watcher) Reload() (*Config, error) {
	return w.load(stampOf(w.path), true)
}

func (w *Watcher) load(st fileStamp, force bool) (*Config, error) {
	h, c, err := load(w.path, w.defaultPath)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stamp = st
	if err != nil {
		if !force && w.badErr != nil && h == w.badHash {
			return nil, nil // this content was already reported
		}
		w.badHash, w.badErr = h, err
		return nil, err
	}
	w.badErr = nil
	if c.Hash == w.current.Hash && c.Path == w.current.Path {
		return nil, nil
	}
	w.current = c
	return c, nil
}

// Run checks the file every interval until ctx is done, calling onChange
// with each new valid configuration and onError with each new failure
// (either may be nil).
func (w *Watcher) Run(ctx context.Context, interval time.Duration, onChange func(*Config), onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := w.Check()
		switch {
		case err != nil && onError != nil:
			onError(err)
		case c != nil && onChange != nil:
			onChange(c)
		}
	}
}
