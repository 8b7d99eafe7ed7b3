package identity

import (
	"bufio"
	"bytes"
	"os"
	"sync"
	"time"
)

// nameDB maps numeric ids to names from a colon-separated database in the
// format of /etc/passwd and /etc/group (name:password:id:…), read without
// cgo or NSS: users and groups that exist only in NSS modules (LDAP, SSSD,
// Azure AD login) have no name here, which makes their selectors not match.
//
// Names are cached per id, negative answers included, for ttl: a renamed
// or deleted user is seen after at most ttl. The cache holds at most max
// ids; when it is full, expired entries are dropped first and then
// arbitrary ones. A miss reads the file once, outside the lock.
type nameDB struct {
	path string
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu      sync.Mutex
	entries map[uint32]nameEntry
}

type nameEntry struct {
	name    string // "" when the id has no name
	expires time.Time
}

func newNameDB(path string, ttl time.Duration, max int, now func() time.Time) *nameDB {
	return &nameDB{path: path, ttl: ttl, max: max, now: now, entries: make(map[uint32]nameEntry)}
}

// name returns the name of id, or "" when it has none or the database
// cannot be read (an unreadable database is retried after ttl, like a
// missing name).
func (db *nameDB) name(id uint32) string {
	now := db.now()
	db.mu.Lock()
	e, ok := db.entries[id]
	db.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.name
	}
	name, _ := lookupName(db.path, id)
	db.mu.Lock()
	if len(db.entries) >= db.max {
		db.evict(now)
	}
	db.entries[id] = nameEntry{name: name, expires: now.Add(db.ttl)}
	db.mu.Unlock()
	return name
}

// evict makes room for one entry; db.mu is held.
func (db *nameDB) evict(now time.Time) {
	for id, e := range db.entries {
		if !now.Before(e.expires) {
			delete(db.entries, id)
		}
	}
	for id := range db.entries {
		if len(db.entries) < db.max {
			return
		}
		delete(db.entries, id)
	}
}

// lookupName scans a passwd/group file for the first line whose third
// field is id. Lines that are malformed, comments and NIS "+"/"-" entries
// are skipped.
func lookupName(path string, id uint32) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if name, ok := parseDBLine(sc.Bytes(), id); ok {
			return name, nil
		}
	}
	return "", sc.Err()
}

// parseDBLine returns the name of a "name:x:id:…" line when its id is id.
func parseDBLine(line []byte, id uint32) (string, bool) {
	if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
		return "", false
	}
	name, rest, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 {
		return "", false
	}
	_, rest, ok = bytes.Cut(rest, []byte(":"))
	if !ok {
		return "", false
	}
	idField, _, _ := bytes.Cut(rest, []byte(":"))
	v, ok := parseUint(idField)
	if !ok || v != uint64(id) {
		return "", false
	}
	return string(name), true
}
