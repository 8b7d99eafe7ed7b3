package cgroup2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotMounted means no cgroup2 file system is mounted, so there is no
// cgroup to attach the programs to.
var ErrNotMounted = errors.New("no cgroup2 mount in /proc/self/mounts: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with cgroup v2")

// Root returns the mount point of the cgroup2 hierarchy, read from
// /proc/self/mounts: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified
// on hybrid ones. It returns ErrNotMounted when there is none.
func Root() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", fmt.Errorf("find the cgroup2 mount: %w", err)
	}
	defer f.Close()
	return parseMounts(f)
}

// parseMounts returns the first cgroup2 mount point in a mounts file.
func parseMounts(r io.Reader) (string, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 3 || f[2] != "cgroup2" {
			continue
		}
		return unescapeMount(f[1]), nil
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("find the cgroup2 mount: %w", err)
	}
	return "", ErrNotMounted
}

// unescapeMount undoes the octal escapes (\040 for a space) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Open opens a cgroup2 directory and checks that it is one: on hybrid
// hosts /sys/fs/cgroup is a tmpfs and attaching there fails obscurely.
func Open(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %q: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("statfs cgroup %q: %w", path, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("cgroup %q is not a cgroup2 directory: use the cgroup2 mount from /proc/self/mounts (cgroup2.Root) or a directory below it", path)
	}
	return f, nil
}

// ID returns the id of a cgroup2 directory: its inode number, which is
// what bpf_get_current_cgroup_id returns for processes in it.
func ID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %q: %w", path, err)
	}
	return st.Ino, nil
}
