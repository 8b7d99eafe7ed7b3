package keykeeper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mspguest/msp/agent/hostproto"
)

// maxKeyFile bounds a key file read; a Key JSON is about 200 bytes.
const maxKeyFile = 64 << 10

// keySuffix names key files: <guid>.key (host-protocol.md §6.3).
const keySuffix = ".key"

// tmpPrefix names the temporary files Save renames into place.
const tmpPrefix = ".tmp-"

// ErrNoKeyFile means the store holds no file for the guid.
var ErrNoKeyFile = errors.New("no key file")

// Store keeps latched keys as <dir>/<guid>.key: the Key JSON, mode 0600,
// owned by the agent's user (root), in a 0700 directory of the same owner
// (host-protocol.md §6.3, agent.md §8.1). Other files in the directory
// (provisioned.tag, status.tag) are left alone.
type Store struct {
	dir string
	uid int
	gid int
}

// OpenStore creates dir (and its parents, 0755) if needed and makes it a
// 0700 directory owned by the current user, fixing its mode and owner if
// they differ; fixed lists what was changed, for the log. A symlink or a
// non-directory is an error.
func OpenStore(dir string) (s *Store, fixed []string, err error) {
	s = &Store{dir: dir, uid: os.Geteuid(), gid: os.Getegid()}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, nil, fmt.Errorf("keys directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, nil, fmt.Errorf("keys directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("keys directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("keys directory %s: is a %s, not a directory: remove it so that the agent can create the directory", dir, fileType(fi))
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != s.uid || int(st.Gid) != s.gid {
		if err := os.Lchown(dir, s.uid, s.gid); err != nil {
			return nil, nil, fmt.Errorf("keys directory %s: owned by uid %d: chown to uid %d: %w", dir, st.Uid, s.uid, err)
		}
		fixed = append(fixed, fmt.Sprintf("owner uid %d gid %d changed to uid %d gid %d", st.Uid, st.Gid, s.uid, s.gid))
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("keys directory %s: mode %04o: chmod 0700: %w", dir, fi.Mode().Perm(), err)
		}
		fixed = append(fixed, fmt.Sprintf("mode %04o changed to 0700", fi.Mode().Perm()))
	}
	return s, fixed, nil
}

// Dir returns the keys directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the file of a guid.
func (s *Store) Path(guid string) string { return filepath.Join(s.dir, guid+keySuffix) }

// KeyFileError is a key file the store refuses to use: wrong type, mode or
// owner, unreadable or invalid content. The message names the file and the
// fix and never contains key material.
type KeyFileError struct {
	Path    string
	Problem string
}

func (e *KeyFileError) Error() string {
	return fmt.Sprintf("key file %s: %s", e.Path, e.Problem)
}

// Load reads the key of guid. A missing file is ErrNoKeyFile; a file that
// is not a regular file, not mode 0600, not owned by the agent's user or
// not a valid Key for guid is a *KeyFileError: the caller must not use it.
func (s *Store) Load(guid string) (*hostproto.Key, error) {
	if !hostproto.ValidGUID(guid) {
		return nil, fmt.Errorf("key guid %q: want a GUID", guid)
	}
	path := s.Path(guid)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", path, ErrNoKeyFile)
	case errors.Is(err, syscall.ELOOP):
		return nil, &KeyFileError{path, "is a symbolic link: delete it so that a new key is acquired"}
	case err != nil:
		return nil, &KeyFileError{path, fmt.Sprintf("open: %v", err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &KeyFileError{path, fmt.Sprintf("stat: %v", err)}
	}
	if !fi.Mode().IsRegular() {
		return nil, &KeyFileError{path, fmt.Sprintf("is a %s, not a regular file: delete it so that a new key is acquired", fileType(fi))}
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != s.uid {
		return nil, &KeyFileError{path, fmt.Sprintf("owned by uid %d, want uid %d: someone else may have written it; delete it so that a new key is acquired", st.Uid, s.uid)}
	}
	if fi.Mode().Perm() != 0o600 {
		return nil, &KeyFileError{path, fmt.Sprintf("mode %04o, want 0600: the key may have been read by others; delete it so that a new key is acquired", fi.Mode().Perm())}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, &KeyFileError{path, fmt.Sprintf("read: %v", err)}
	}
	k, err := ReadKeyFile(data, guid)
	if err != nil {
		return nil, &KeyFileError{path, err.Error() + ": delete it so that a new key is acquired"}
	}
	return k, nil
}

// ReadKeyFile parses the content of <guid>.key: a Key JSON (host-protocol.md
// §6.1) with scheme Azure-HMAC-SHA256, a non-nil GUID equal to the file's
// guid (case-insensitive) and 64 hex characters of key, at most 64 KiB.
// Errors quote nothing from the file but a valid GUID, so they can never
// carry key material.
func ReadKeyFile(data []byte, guid string) (*hostproto.Key, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFile)
	}
	var k hostproto.Key
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, errors.New("not a key JSON object")
	}
	switch {
	case k.AuthorizationScheme != hostproto.Scheme:
		return nil, fmt.Errorf("authorizationScheme is not %s", hostproto.Scheme)
	case !hostproto.ValidGUID(k.GUID) || k.GUID == hostproto.NilGUID:
		return nil, errors.New("guid is not a non-nil GUID")
	case !strings.EqualFold(k.GUID, guid):
		return nil, fmt.Errorf("holds key %s, not %s", k.GUID, guid)
	}
	if _, err := hostproto.DecodeKeyHex(k.Key); err != nil {
		return nil, err // names lengths only
	}
	return &k, nil
}

// Save writes k as <guid>.key: a 0600 temporary file, fsync, rename, fsync
// of the directory (host-protocol.md §6.3), then reads it back and checks
// that the guid and key survived.
func (s *Store) Save(k *hostproto.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", k.GUID, err)
	}
	path := s.Path(k.GUID)
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*"+keySuffix) // mode 0600
	if err != nil {
		return fmt.Errorf("save key %s: %w", k.GUID, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: chmod %s: %w", k.GUID, tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: write %s: %w", k.GUID, tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: fsync %s: %w", k.GUID, tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save key %s: close %s: %w", k.GUID, tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save key %s: %w", k.GUID, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("save key %s: fsync %s: %w", k.GUID, s.dir, err)
	}
	back, err := s.Load(k.GUID)
	if err != nil {
		return fmt.Errorf("save key %s: read back: %w", k.GUID, err)
	}
	if back.GUID != k.GUID || !bytes.EqualFold([]byte(back.Key), []byte(k.Key)) {
		return &KeyFileError{path, "read back a different key than was written: check the disk"}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Prune deletes every key file and leftover temporary file except the keys
// of the guids in keep (compared case-insensitively). It returns the guids
// deleted; other files are never touched.
func (s *Store) Prune(keep ...string) ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("prune keys: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		guid, isKey := strings.CutSuffix(name, keySuffix)
		switch {
		case !isKey:
			continue
		case strings.HasPrefix(name, tmpPrefix):
		case !hostproto.ValidGUID(guid):
			continue
		case containsFold(keep, guid):
			continue
		default:
			deleted = append(deleted, guid)
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return deleted, fmt.Errorf("prune keys: %w", errors.Join(errs...))
	}
	return deleted, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if x != "" && strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func fileType(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// redactJSONError replaces JSON decoding errors, which may quote input
// bytes, with a fixed message; validation errors of hostproto.Key never
// contain key material and pass through.
func redactJSONError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return errors.New("not a key JSON object")
	}
	return err
}
