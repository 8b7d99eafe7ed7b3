package identity

import (
	"bytes"
	"testing"
)

func TestParseStat(t *testing.T) {
	tail := " S 1 2 2 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10\n"
	tests := []struct {
		name  string
		in    string
		comm  string
		start uint64
		ok    bool
	}{
		{"Plain", "42 (curl)" + tail, "curl", 98765, true},
		{"CommWithParenAndSpace", "42 (a) b (c)" + tail, "a) b (c", 98765, true},
		{"EmptyComm", "42 ()" + tail, "", 98765, true},
		{"Short", "42 (curl) S 1 2", "", 0, false},
		{"NoParens", "42 curl S", "", 0, false},
		{"BadNumber", "42 (curl) S 1 2 2 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98x65 1\n", "", 0, false},
		{"StartTimeLast", "42 (curl) S 1 2 2 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5\n", "curl", 5, true},
	}
	for _, tt := range tests {
		st, ok := parseStat([]byte(tt.in))
		if ok != tt.ok || ok && (string(st.comm) != tt.comm || st.startTime != tt.start) {
			t.Errorf("%s: parseStat = %q %d %v; want %q %d %v", tt.name, st.comm, st.startTime, ok, tt.comm, tt.start, tt.ok)
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      procStatus
		wantGIDs  []uint32
		hasIDs    bool
		hasGroups bool
	}{
		{"Full", "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\nGroups:\t4 24 27 \n",
			procStatus{realUID: 1000, effUID: 0, realGID: 100}, []uint32{4, 24, 27}, true, true},
		{"NoGroups", "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n", procStatus{}, nil, true, true},
		{"MissingGid", "Uid:\t0\t0\t0\t0\nGroups:\t1\n", procStatus{}, []uint32{1}, false, true},
		{"BadUid", "Uid:\tx\t0\nGid:\t0\t0\nGroups:\n", procStatus{}, nil, false, true},
		{"UidOverflow", "Uid:\t4294967296\t0\nGid:\t0\nGroups:\n", procStatus{}, nil, false, true},
		{"BadGroups", "Uid:\t0\t0\nGid:\t0\nGroups:\t1 x 3\n", procStatus{}, nil, true, false},
		{"Empty", "", procStatus{}, nil, false, false},
	}
	for _, tt := range tests {
		st := parseStatus([]byte(tt.in))
		var gids []uint32
		if st.hasGroups {
			eachGID(st.groups, func(g uint32) { gids = append(gids, g) })
		}
		if st.hasIDs != tt.hasIDs || st.hasGroups != tt.hasGroups ||
			tt.hasIDs && (st.realUID != tt.want.realUID || st.effUID != tt.want.effUID || st.realGID != tt.want.realGID) ||
			len(gids) != len(tt.wantGIDs) {
			t.Errorf("%s: parseStatus = %+v gids %v; want %+v gids %v ids %v groups %v", tt.name, st, gids, tt.want, tt.wantGIDs, tt.hasIDs, tt.hasGroups)
			continue
		}
		for i := range gids {
			if gids[i] != tt.wantGIDs[i] {
				t.Errorf("%s: gids %v; want %v", tt.name, gids, tt.wantGIDs)
			}
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (curl) S 1 2 2 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10\n"))
	f.Add([]byte("1 ((()) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok := parseStat(b)
		if ok && !bytes.Contains(b, st.comm) {
			t.Fatalf("comm %q not from the input", st.comm)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Uid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\nGroups:\t4 24 27 \n"))
	f.Add([]byte("Groups:\t\nUid:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st := parseStatus(b)
		if st.hasGroups {
			eachGID(st.groups, func(uint32) {})
		}
	})
}

func FuzzCmdline(f *testing.F) {
	f.Add([]byte("curl\x00-H\x00Authorization: Bearer x\x00http://a?sig=b\x00"), false)
	f.Add([]byte("-----BEGIN\x00--password\x00"), true)
	f.Add([]byte("a=eyJhbGciOiJIUzI1NiJ9 https://u:p@h x --user a:b"), false)
	f.Fuzz(func(t *testing.T, b []byte, truncated bool) {
		args := splitCmdline(b, truncated, nil)
		if len(args) > cmdlineArgs {
			t.Fatalf("%d args; want at most %d", len(args), cmdlineArgs)
		}
		out := appendRedacted(nil, args)
		// A planted secret value after a recognised key never survives.
		planted := appendRedacted(nil, append(args, []byte("sig=QQQsecretQQQ")))
		if bytes.Contains(planted, []byte("QQQsecretQQQ")) && len(args) < cmdlineArgs {
			t.Fatalf("secret survived after %q: %q", args, planted)
		}
		_ = out
	})
}
