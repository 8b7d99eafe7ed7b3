package rulefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
)

func TestLocalFilesRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: rule files must be owned by root; CI runs as root")
	}
	const good = `{"defaultAccess":"deny","id":"l1"}`
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir, file string)
		wantErr string // "" ok, "none" ErrNoFile
		sleeps  int
	}{
		{"valid", func(t *testing.T, dir, file string) { write(t, file, good, 0o600) }, "", 0},
		{"missing file", func(t *testing.T, dir, file string) {}, "none", 0},
		{"missing dir", func(t *testing.T, dir, file string) { os.Remove(dir) }, "none", 0},
		{"malformed retried", func(t *testing.T, dir, file string) { write(t, file, `{`, 0o600) }, "unexpected end", 2},
		{"symlink", func(t *testing.T, dir, file string) {
			write(t, file+".real", good, 0o600)
			if err := os.Symlink(file+".real", file); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file", 2},
		{"directory", func(t *testing.T, dir, file string) { os.Mkdir(file, 0o700) }, "not a regular file", 2},
		{"group writable file", func(t *testing.T, dir, file string) { write(t, file, good, 0o620) }, "chmod go-w", 2},
		{"world writable dir", func(t *testing.T, dir, file string) {
			write(t, file, good, 0o600)
			os.Chmod(dir, 0o777)
		}, "chmod go-w", 2},
		{"owned by a user", func(t *testing.T, dir, file string) {
			write(t, file, good, 0o600)
			os.Chown(file, 1000, 1000)
		}, "must be owned by root", 2},
		{"too large", func(t *testing.T, dir, file string) {
			write(t, file, `{"id":"`+strings.Repeat("x", MaxFileSize)+`"}`, 0o600)
		}, "limit", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rules")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir, filepath.Join(dir, "IMDS_Rules.json"))
			sleeps := 0
			lf := LocalFiles{Dir: dir, Sleep: func(d time.Duration) {
				if d != 50*time.Millisecond {
					t.Errorf("slept %v; want 50ms", d)
				}
				sleeps++
			}}
			it, err := lf.Read(hostproto.IMDS)
			switch tc.wantErr {
			case "":
				if err != nil || it.ID != "l1" {
					t.Fatalf("Read = %+v, %v", it, err)
				}
			case "none":
				if !errors.Is(err, ErrNoFile) {
					t.Fatalf("err = %v; want ErrNoFile", err)
				}
			default:
				if err == nil || errors.Is(err, ErrNoFile) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
			}
			if sleeps != tc.sleeps {
				t.Errorf("slept %d times; want %d", sleeps, tc.sleeps)
			}
		})
	}
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestFileName(t *testing.T) {
	for e, want := range map[hostproto.Endpoint]string{hostproto.IMDS: "IMDS_Rules.json", hostproto.WireServer: "WireServer_Rules.json", hostproto.HostGAPlugin: "WireServer_Rules.json"} {
		if got := FileName(e); got != want {
			t.Errorf("FileName(%v) = %q; want %q", e, got, want)
		}
	}
}
