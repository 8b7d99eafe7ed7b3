package bpf

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
)

// TestRecordLayout pins struct conn_record: ebpf.md §6.2's 56 bytes, the
// netns cookie and the task identity (96 bytes, 8-byte aligned), and checks
// the Go mirror against the object's BTF.
func TestRecordLayout(t *testing.T) {
	var r proxyConnRecord
	want := []struct {
		c      string
		offset uintptr
		goOff  uintptr
	}{
		{"cookie", 0, unsafe.Offsetof(r.Cookie)},
		{"cgroup_id", 8, unsafe.Offsetof(r.CgroupId)},
		{"tgid", 16, unsafe.Offsetof(r.Tgid)},
		{"tid", 20, unsafe.Offsetof(r.Tid)},
		{"uid", 24, unsafe.Offsetof(r.Uid)},
		{"gid", 28, unsafe.Offsetof(r.Gid)},
		{"orig_ip4", 32, unsafe.Offsetof(r.OrigIp4)},
		{"orig_port", 36, unsafe.Offsetof(r.OrigPort)},
		{"family", 38, unsafe.Offsetof(r.Family)},
		{"comm", 40, unsafe.Offsetof(r.Comm)},
		{"netns_cookie", 56, unsafe.Offsetof(r.NetnsCookie)},
		{"exe_ino", 64, unsafe.Offsetof(r.ExeIno)},
		{"start_time", 72, unsafe.Offsetof(r.StartTime)},
		{"exe_dev", 80, unsafe.Offsetof(r.ExeDev)},
		{"euid", 84, unsafe.Offsetof(r.Euid)},
		{"task_info", 88, unsafe.Offsetof(r.TaskInfo)},
		{"pad", 92, unsafe.Offsetof(r.Pad)},
	}
	const size = 96
	if recordSize != size {
		t.Errorf("Go record size %d; want %d", recordSize, size)
	}
	spec, err := loadProxy()
	if err != nil {
		t.Fatal(err)
	}
	var s *btf.Struct
	if err := spec.Types.TypeByName("conn_record", &s); err != nil {
		t.Fatal(err)
	}
	if s.Size != size {
		t.Errorf("C struct conn_record size %d; want %d", s.Size, size)
	}
	members := map[string]btf.Member{}
	for _, m := range s.Members {
		members[m.Name] = m
	}
	if len(members) != len(want) {
		t.Errorf("conn_record has %d members; want %d", len(members), len(want))
	}
	for _, w := range want {
		m, ok := members[w.c]
		if !ok {
			t.Errorf("conn_record.%s missing", w.c)
			continue
		}
		if got := uintptr(m.Offset.Bytes()); got != w.offset || w.goOff != w.offset {
			t.Errorf("%s: C offset %d, Go offset %d; want %d", w.c, got, w.goOff, w.offset)
		}
	}
}

func TestNewRecord(t *testing.T) {
	in := proxyConnRecord{
		Cookie: 7, CgroupId: 8, NetnsCookie: 9, Tgid: 10, Tid: 11, Uid: 12, Gid: 13,
		OrigIp4: ip4Key(netip.MustParseAddr("169.254.169.254")), OrigPort: portKey(80), Family: 10,
		TaskInfo: 1, Euid: 14, ExeDev: 8<<20 | 3, ExeIno: 15, StartTime: 16,
	}
	for i, c := range "curl" {
		in.Comm[i] = int8(c)
	}
	want := Record{
		Cookie: 7, CgroupID: 8, NetnsCookie: 9, TGID: 10, TID: 11, UID: 12, GID: 13,
		Dest: netip.MustParseAddrPort("169.254.169.254:80"), Family: 10, Comm: "curl",
		TaskInfo: true, EUID: 14, ExeDev: 0x803, ExeIno: 15, StartTime: 16,
	}
	if got := newRecord(&in); got != want {
		t.Errorf("newRecord\n got %+v\nwant %+v", got, want)
	}
	// A full 16-byte comm has no terminator.
	for i := range in.Comm {
		in.Comm[i] = 'x'
	}
	if got := newRecord(&in).Comm; len(got) != 16 {
		t.Errorf("comm %q; want 16 bytes", got)
	}
	in.TaskInfo = 0
	if newRecord(&in).TaskInfo {
		t.Error("task_info 0 gave TaskInfo true")
	}
}

// TestUserDev checks the kernel dev_t (MAJOR << 20 | MINOR) conversion to
// stat(2)'s st_dev, beyond the 8-bit major and minor of the old encoding.
func TestUserDev(t *testing.T) {
	tests := []struct {
		major, minor uint32
		want         uint64 // unix.Mkdev(major, minor), glibc makedev
	}{
		{0, 0, 0},
		{8, 1, 0x801},
		{254, 0, 0xfe00},
		{259, 3, 0x10303},
		{0, 0x12345, 0x12300045},
		{0xfff, 0xfffff, 0xffffffff},
	}
	for _, tt := range tests {
		if got := userDev(tt.major<<20 | tt.minor); got != tt.want {
			t.Errorf("userDev(%d:%d) = %#x; want %#x", tt.major, tt.minor, got, tt.want)
		}
	}
}

// TestByteOrder pins the in-memory bytes the programs compare with
// ctx->user_ip4 and ctx->user_port (network order, ebpf.md §6.2).
func TestByteOrder(t *testing.T) {
	k, err := targetKey(netip.MustParseAddrPort("168.63.129.16:32526"))
	if err != nil {
		t.Fatal(err)
	}
	b := (*[8]byte)(unsafe.Pointer(&k))
	if want := [8]byte{168, 63, 129, 16, 0x7f, 0x0e, 0, 0}; *b != want {
		t.Errorf("target key bytes % x; want % x", *b, want)
	}
	if p := portFromKey(portKey(32526)); p != 32526 {
		t.Errorf("port round trip %d", p)
	}
	for _, bad := range []string{"[::1]:80", "127.0.0.1:0"} {
		if _, err := targetKey(netip.MustParseAddrPort(bad)); err == nil {
			t.Errorf("targetKey(%s): want an error", bad)
		}
	}
	if k2, err := targetKey(netip.MustParseAddrPort("[::ffff:168.63.129.16]:32526")); err != nil || k2 != k {
		t.Errorf("v4-mapped target key %v, %v; want %v", k2, err, k)
	}
}

func TestCounterIndices(t *testing.T) {
	spec, err := loadProxy()
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Maps["counters"].MaxEntries; n != numCounters {
		t.Errorf("counters map has %d entries, Go knows %d: update counters.go with enum counter", n, numCounters)
	}
	var c Counters
	for i := uint32(0); i < numCounters; i++ {
		if c.field(i) == nil {
			t.Errorf("counter %d has no Counters field", i)
		}
	}
}
