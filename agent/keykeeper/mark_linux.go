package keykeeper

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// markControl returns a net.Dialer Control func that sets SO_MARK on the
// socket before connect, so the redirector exempts the agent's own host
// calls (ebpf.md §6.5). mark 0 sets nothing. Setting a mark needs
// CAP_NET_ADMIN.
func markControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	if mark == 0 {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("set SO_MARK %#x on the host socket (needs CAP_NET_ADMIN): %w", mark, err)
		}
		return nil
	}
}
