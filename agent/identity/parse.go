package identity

import "bytes"

// procStat is what /proc/<pid>/stat tells about a task.
type procStat struct {
	comm      []byte // field 2, without the parentheses (raw: may hold ')' and spaces)
	startTime uint64 // field 22, clock ticks since boot
}

// parseStat reads /proc/<pid>/stat. The comm field is found between the
// first '(' and the last ')', since the name itself may contain both.
func parseStat(b []byte) (procStat, bool) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procStat{}, false
	}
	st := procStat{comm: b[open+1 : closing]}
	// After ") " come field 3 (state) onwards; field 22 is the 20th of them.
	rest := b[closing+1:]
	for field := 3; field <= 22; field++ {
		rest = trimLeftSpace(rest)
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		if field == 22 {
			v, ok := parseUint(bytes.TrimRight(rest[:end], "\n"))
			if !ok {
				return procStat{}, false
			}
			st.startTime = v
			return st, true
		}
		if end == len(rest) {
			return procStat{}, false
		}
		rest = rest[end:]
	}
	return procStat{}, false
}

// procStatus is what the caller's identity needs from /proc/<pid>/status.
type procStatus struct {
	realUID, effUID uint32 // Uid: real, effective
	realGID         uint32 // Gid: real
	hasIDs          bool   // both the Uid: and the Gid: line were read
	groups          []byte // the Groups: line's value, space-separated gids
	hasGroups       bool
}

// parseStatus reads the Uid:, Gid: and Groups: lines of
// /proc/<pid>/status.
// Lines that are malformed leave their fields unset, never guessed.
func parseStatus(b []byte) procStatus {
	var st procStatus
	var hasUID, hasGID bool
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			fields := line[len("Uid:"):]
			real, rest, ok1 := nextUint(fields)
			eff, _, ok2 := nextUint(rest)
			if ok1 && ok2 && real <= 0xffffffff && eff <= 0xffffffff {
				st.realUID, st.effUID, hasUID = uint32(real), uint32(eff), true
			}
		case bytes.HasPrefix(line, []byte("Gid:")):
			real, _, ok := nextUint(line[len("Gid:"):])
			if ok && real <= 0xffffffff {
				st.realGID, hasGID = uint32(real), true
			}
		case bytes.HasPrefix(line, []byte("Groups:")):
			st.groups, st.hasGroups = line[len("Groups:"):], validGroups(line[len("Groups:"):])
		}
	}
	st.hasIDs = hasUID && hasGID
	return st
}

// validGroups reports whether a Groups: value is only gids and blanks.
func validGroups(v []byte) bool {
	for rest := v; ; {
		var ok bool
		rest = trimLeftSpace(rest)
		if len(rest) == 0 {
			return true
		}
		var g uint64
		if g, rest, ok = nextUint(rest); !ok || g > 0xffffffff {
			return false
		}
	}
}

// eachGID calls fn for every gid of a validated Groups: value.
func eachGID(v []byte, fn func(uint32)) {
	for rest := v; ; {
		rest = trimLeftSpace(rest)
		if len(rest) == 0 {
			return
		}
		g, r, ok := nextUint(rest)
		if !ok || g > 0xffffffff {
			return
		}
		fn(uint32(g))
		rest = r
	}
}

// nextUint reads one decimal number after optional blanks and returns the
// rest; the number must end at a blank or at the end.
func nextUint(b []byte) (uint64, []byte, bool) {
	b = trimLeftSpace(b)
	end := 0
	for end < len(b) && b[end] >= '0' && b[end] <= '9' {
		end++
	}
	if end < len(b) && b[end] != ' ' && b[end] != '\t' {
		return 0, b, false
	}
	v, ok := parseUint(b[:end])
	return v, b[end:], ok
}

// parseUint parses a non-empty decimal number without overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// cmdlineArgs is the maximum number of arguments kept (agent.md §5.1).
const cmdlineArgs = 4

// splitCmdline returns up to cmdlineArgs NUL-terminated arguments of
// /proc/<pid>/cmdline, appended to dst. truncated says that b was cut by
// the read limit: an argument without its terminating NUL is then dropped,
// since a secret cut in half is no longer recognisable by the redactor.
// Processes that rewrite their argv (setproctitle) may leave a single
// unterminated string; when b is complete, that string is kept.
func splitCmdline(b []byte, truncated bool, dst [][]byte) [][]byte {
	args := dst[:0]
	for len(b) > 0 && len(args) < cmdlineArgs {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			if !truncated {
				args = append(args, b)
			}
			break
		}
		args = append(args, b[:i])
		b = b[i+1:]
	}
	return args
}
