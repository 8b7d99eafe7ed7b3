package rulefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
)

// FileName returns the local rule file of an endpoint
// (authorization.md §6.1); HostGAPlugin follows WireServer.
func FileName(e hostproto.Endpoint) string {
	if e == hostproto.IMDS {
		return "IMDS_Rules.json"
	}
	return "WireServer_Rules.json"
}

// DefaultDir is where the agent keeps local rule files, root-owned 0700
// (authorization.md §6.1, with this project's product directory).
const DefaultDir = "/var/lib/msp-agent/rules"

// LocalFiles reads local rule files.
type LocalFiles struct {
	// Dir holds the files; empty means DefaultDir.
	Dir string
	// Sleep waits between parse attempts; nil means time.Sleep.
	Sleep func(time.Duration)
}

// ErrNoFile matches the error of Read when the endpoint has no file:
// the host item applies unchanged (authorization.md §6.5).
var ErrNoFile = errors.New("no local rule file")

// Read loads the endpoint's local rule file. A missing file returns an
// error matching ErrNoFile; any other error means the endpoint fails
// closed (put it in authz.Input.LocalErr). Parsing is retried 3 times, 50 ms
// apart, for a file caught mid-write (§6.3). The file must be a regular
// file of at most MaxFileSize bytes, and neither it nor Dir may be owned or
// writable by anyone but root (§6.5).
func (f LocalFiles) Read(e hostproto.Endpoint) (hostproto.AuthorizationItem, error) {
	sleep := f.Sleep
	if sleep == nil {
		sleep = time.Sleep
	}
	if f.Dir == "" {
		f.Dir = DefaultDir
	}
	path := filepath.Join(f.Dir, FileName(e))
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			sleep(50 * time.Millisecond)
		}
		var item hostproto.AuthorizationItem
		item, err = f.readOnce(path)
		if err == nil || errors.Is(err, ErrNoFile) {
			return item, err
		}
	}
	return hostproto.AuthorizationItem{}, err
}

func (f LocalFiles) readOnce(path string) (hostproto.AuthorizationItem, error) {
	if err := rootOnly(f.Dir, true); err != nil {
		return hostproto.AuthorizationItem{}, err
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return hostproto.AuthorizationItem{}, fmt.Errorf("%s: %w", path, ErrNoFile)
	}
	if err != nil {
		return hostproto.AuthorizationItem{}, fmt.Errorf("local rule file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return hostproto.AuthorizationItem{}, fmt.Errorf("local rule file %s: not a regular file (%v): replace it with a plain file", path, fi.Mode().Type())
	}
	if fi.Size() > MaxFileSize {
		return hostproto.AuthorizationItem{}, fmt.Errorf("local rule file %s: %d bytes, limit %d", path, fi.Size(), MaxFileSize)
	}
	if err := rootOnly(path, false); err != nil {
		return hostproto.AuthorizationItem{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return hostproto.AuthorizationItem{}, fmt.Errorf("local rule file: %w", err)
	}
	item, err := ParseLocal(data)
	if err != nil {
		return hostproto.AuthorizationItem{}, fmt.Errorf("local rule file %s: %w", path, err)
	}
	return item, nil
}

// rootOnly fails when path is owned by a non-root user or writable by group
// or others.
func rootOnly(path string, dir bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		if dir && errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rules directory %s: %w", path, ErrNoFile)
		}
		return fmt.Errorf("local rules: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return fmt.Errorf("%s: owned by uid %d: must be owned by root (chown root %s)", path, st.Uid, path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: mode %v is writable by group or others: chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	return nil
}
