package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// Record is what connect4/connect6 captured about the caller of one
// redirected connect(), in the caller's own context (ebpf.md §5, §6.2).
type Record struct {
	Cookie      uint64         // socket cookie of the client's socket
	CgroupID    uint64         // cgroup2 id (inode) of the caller
	NetnsCookie uint64         // network namespace cookie of the socket
	TGID        uint32         // process id
	TID         uint32         // thread id that called connect()
	UID         uint32         // real uid
	GID         uint32         // real gid
	Dest        netip.AddrPort // original destination, always IPv4
	Family      uint16         // 2 (AF_INET) or 10 (AF_INET6 socket, v4-mapped destination)
	Comm        string         // task comm, at most 15 bytes

	// Task identity read from the kernel's task struct at connect(), where
	// the kernel has BTF. TaskInfo is false when it could not be captured;
	// the other fields are then zero and mean nothing.
	TaskInfo bool
	// EUID is the effective uid of the thread that called connect().
	EUID uint32
	// ExeDev and ExeIno identify the task's executable file
	// (current->mm->exe_file, what /proc/<tgid>/exe shows): ExeDev is
	// encoded as stat(2)'s st_dev (unix.Mkdev(major, minor)). Both are 0
	// if the task had no executable.
	ExeDev uint64
	ExeIno uint64
	// StartTime is the start time of the thread group leader in
	// nanoseconds since boot (task->group_leader->start_boottime), the
	// clock of /proc/<tgid>/stat field 22 (which counts it in USER_HZ
	// ticks).
	StartTime uint64
}

// recordSize is the size of struct conn_record in proxy.bpf.c.
const recordSize = int(unsafe.Sizeof(proxyConnRecord{}))

// newRecord converts the kernel's record; it is the only place that knows
// the C layout and byte orders.
func newRecord(r *proxyConnRecord) Record {
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], r.OrigIp4) // network order in memory
	comm := unsafe.Slice((*byte)(unsafe.Pointer(&r.Comm[0])), len(r.Comm))
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	return Record{
		Cookie:      r.Cookie,
		CgroupID:    r.CgroupId,
		NetnsCookie: r.NetnsCookie,
		TGID:        r.Tgid,
		TID:         r.Tid,
		UID:         r.Uid,
		GID:         r.Gid,
		Dest:        netip.AddrPortFrom(netip.AddrFrom4(ip), portFromKey(r.OrigPort)),
		Family:      r.Family,
		Comm:        string(comm),
		TaskInfo:    r.TaskInfo != 0,
		EUID:        r.Euid,
		ExeDev:      userDev(r.ExeDev),
		ExeIno:      r.ExeIno,
		StartTime:   r.StartTime,
	}
}

// userDev converts a kernel-internal dev_t (MAJOR << 20 | MINOR, as in
// super_block.s_dev) to stat(2)'s st_dev encoding on Linux, glibc's
// makedev (what unix.Mkdev computes).
func userDev(kdev uint32) uint64 {
	major, minor := uint64(kdev>>20), uint64(kdev&(1<<20-1))
	return major&0xfff<<8 | major&^0xfff<<32 | minor&0xff | minor&^0xff<<12
}

// ip4Key returns an IPv4 address as the network-order u32 the programs
// compare with ctx->user_ip4 (the in-memory bytes are a.b.c.d).
func ip4Key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// portKey returns a port as the network-order u16 of ctx->user_port.
func portKey(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func nativePut32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }

// portFromKey is the inverse of portKey.
func portFromKey(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
