package keykeeper

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
)

const (
	testGUID   = "e3882f98-da8d-4410-8394-06c23462781c"
	testKeyHex = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"
)

func testKey(guid string) *hostproto.Key {
	inc := uint32(1)
	return &hostproto.Key{AuthorizationScheme: hostproto.Scheme, IncarnationID: &inc, GUID: guid, Issued: "2025-04-23T12:00:00Z", Key: testKeyHex}
}

func TestStoreRefusesUnsafeKeyFiles(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"mode 0644", func(t *testing.T, p string) { os.Chmod(p, 0o644) }, "mode 0644, want 0600"},
		{"mode 0400", func(t *testing.T, p string) { os.Chmod(p, 0o400) }, "mode 0400, want 0600"},
		{"other owner", func(t *testing.T, p string) { os.Chown(p, 65534, 65534) }, "owned by uid 65534"},
		{"symlink", func(t *testing.T, p string) {
			os.Rename(p, p+".real")
			os.Symlink(p+".real", p)
		}, "symbolic link"},
		{"directory", func(t *testing.T, p string) { os.Remove(p); os.Mkdir(p, 0o700) }, "is a directory"},
		{"fifo", func(t *testing.T, p string) { os.Remove(p); syscall.Mkfifo(p, 0o600) }, "named pipe"},
		{"other guid", func(t *testing.T, p string) {
			os.WriteFile(p, []byte(`{"authorizationScheme":"Azure-HMAC-SHA256","guid":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","key":"`+testKeyHex+`"}`), 0o600)
		}, "holds key 1b4e28ba"},
		{"garbage", func(t *testing.T, p string) { os.WriteFile(p, []byte(testKeyHex+`{`), 0o600) }, "not a key JSON object"},
		{"short key", func(t *testing.T, p string) {
			os.WriteFile(p, []byte(`{"authorizationScheme":"Azure-HMAC-SHA256","guid":"`+testGUID+`","key":"4A404E63"}`), 0o600)
		}, "want 64 hex characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := OpenStore(keysDir(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(testKey(testGUID)); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, s.Path(testGUID))
			_, err = s.Load(testGUID)
			var kfe *KeyFileError
			if !errors.As(err, &kfe) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), s.Path(testGUID)) {
				t.Fatalf("err = %v; want a KeyFileError naming the file and %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "delete it") {
				t.Errorf("error gives no fix: %v", err)
			}
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(testKeyHex[:16])) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	s, _, _ := OpenStore(keysDir(t))
	if _, err := s.Load(testGUID); !errors.Is(err, ErrNoKeyFile) {
		t.Errorf("missing file: %v; want ErrNoKeyFile", err)
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (file owners); CI runs as root")
	}
}

func TestOpenStoreFixesDirectory(t *testing.T) {
	requireRoot(t)
	dir := keysDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, 65534, 65534)
	s, fixed, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dir)
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o700 || st.Uid != 0 || len(fixed) != 2 {
		t.Errorf("dir mode %v uid %d, fixed %q; want 0700 root and two fixes", fi.Mode(), st.Uid, fixed)
	}
	if _, fixed, _ = OpenStore(dir); len(fixed) != 0 {
		t.Errorf("second open fixed %q", fixed)
	}
	if s.Dir() != dir {
		t.Errorf("Dir() = %s", s.Dir())
	}
	// A symlink or a file where the directory should be is refused.
	link := filepath.Join(t.TempDir(), "keys")
	os.Symlink(dir, link)
	if _, _, err := OpenStore(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked keys dir: %v", err)
	}
}

func TestStorePrune(t *testing.T) {
	s, _, err := OpenStore(keysDir(t))
	if err != nil {
		t.Fatal(err)
	}
	guids := []string{testGUID, "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}
	for _, g := range guids {
		if err := s.Save(testKey(g)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"status.tag", "provisioned.tag", ".tmp-123.key", "notaguid.key"} {
		os.WriteFile(filepath.Join(s.Dir(), name), nil, 0o600)
	}
	deleted, err := s.Prune(strings.ToUpper(guids[0]), guids[1])
	if err != nil || len(deleted) != 1 || deleted[0] != guids[2] {
		t.Fatalf("deleted %v, %v; want %s", deleted, err, guids[2])
	}
	entries, _ := os.ReadDir(s.Dir())
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := "e3882f98-da8d-4410-8394-06c23462781c.key 1b4e28ba-2fa1-11d2-883f-0016d3cca427.key notaguid.key provisioned.tag status.tag"
	for _, w := range strings.Fields(want) {
		if !strings.Contains(strings.Join(left, " "), w) {
			t.Errorf("%s was deleted; left %v", w, left)
		}
	}
	if strings.Contains(strings.Join(left, " "), ".tmp-") || len(left) != 5 {
		t.Errorf("left %v; want the temporary file gone", left)
	}
}

// TestKeeperRefusesUnsafeKeyFile: a persisted key whose file has the wrong
// mode is not reused; the keeper says so, acquires a new key and the bad
// file is deleted.
func TestKeeperRefusesUnsafeKeyFile(t *testing.T) {
	requireRoot(t)
	h := startHost(t)
	dir := keysDir(t)
	first := run(t, h, dir, nil)
	old := first.Current().KeyGUID
	first.stop()
	os.Chmod(filepath.Join(dir, old+".key"), 0o644)

	r := run(t, h, dir, nil)
	s := r.Current()
	if s.KeyGUID == old || s.Signer == nil || !s.Latched || s.LastError != nil {
		t.Fatalf("key %s latched %v err %v; want a new key", s.KeyGUID, s.Latched, s.LastError)
	}
	if !strings.Contains(s.Warning, "mode 0644, want 0600") || !strings.Contains(r.logs.String(), "refusing to use the key file") {
		t.Errorf("warning %q; the refusal is not reported", s.Warning)
	}
	if files := keyFiles(t, dir); len(files) != 1 || files[0] != s.KeyGUID {
		t.Errorf("key files %v; want only the new one (the refused file deleted)", files)
	}
	if n := len(h.records(t, "POST", "/secure-channel/key")); n != 4 {
		t.Errorf("%d key calls; want two acquisitions and attestations", n)
	}
}

func FuzzReadKeyFile(f *testing.F) {
	good := `{"authorizationScheme":"Azure-HMAC-SHA256","incarnationId":1,"guid":"` + testGUID + `","issued":"2025-04-23T12:00:00Z","key":"` + testKeyHex + `"}`
	for _, seed := range []string{good, `{}`, `[`, `{"guid":null}`, `{"incarnationId":-1}`, "\xef\xbb\xbf" + good, good + good, strings.Repeat("[", 1000)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ReadKeyFile(data, testGUID)
		if err != nil {
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(testKeyHex[:16])) {
				t.Fatalf("error leaks key material: %v", err)
			}
			return
		}
		if !strings.EqualFold(k.GUID, testGUID) || k.Validate() != nil {
			t.Fatalf("accepted an invalid key for %s: %v", k.GUID, k)
		}
		if _, err := k.Bytes(); err != nil {
			t.Fatal(err)
		}
	})
}
