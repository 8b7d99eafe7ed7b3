package doctor

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/bpf/cgroup2"
	"github.com/mspguest/msp/handler/osgate"
)

// LinuxSystem reads this machine.
func LinuxSystem() System {
	return System{
		KernelRelease: func() (string, error) {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil {
				return "", err
			}
			return unix.ByteSliceToString(u.Release[:]), nil
		},
		Cgroup2Root: cgroup2.Root,
		ProbeKernel: osgate.ProbeKernel,
		IsBPFFS: func(path string) (bool, error) {
			var st unix.Statfs_t
			if err := unix.Statfs(path, &st); err != nil {
				return false, &os.PathError{Op: "statfs", Path: path, Err: err}
			}
			return st.Type == unix.BPF_FS_MAGIC, nil
		},
	}
}
