package cgroup2

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMounts(t *testing.T) {
	tests := []struct {
		name, mounts, want string
		err                error
	}{
		{"hybrid", "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n", "/sys/fs/cgroup/unified", nil},
		{"unified", "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n", "/sys/fs/cgroup", nil},
		{"escaped", `none /my\040cgroups cgroup2 rw 0 0` + "\n", "/my cgroups", nil},
		{"none", "proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n", "", ErrNotMounted},
		{"empty", "", "", ErrNotMounted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMounts(strings.NewReader(tt.mounts))
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}
