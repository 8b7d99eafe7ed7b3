package main

import (
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"time"
)

// defaultEpoch is the mtime of every archive entry when SOURCE_DATE_EPOCH
// is unset (https://reproducible-builds.org/specs/source-date-epoch/).
var defaultEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// sourceDateEpoch returns SOURCE_DATE_EPOCH from env, or defaultEpoch.
func sourceDateEpoch(getenv func(string) string) (time.Time, error) {
	v := getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return defaultEpoch, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	// Zip's DOS time starts in 1980.
	if err != nil || sec < 315532800 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970 after 1980-01-01 (e.g. `git log -1 --format=%%ct`)", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// entry is one file of an archive: its path inside, its bytes and its mode.
type entry struct {
	name string
	data []byte
	mode fs.FileMode
}

// fileEntry reads src as an archive entry called name.
func fileEntry(name, src string, mode fs.FileMode) (entry, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return entry{}, fmt.Errorf("%s: %w", name, err)
	}
	return entry{name: name, data: data, mode: mode}, nil
}

func sortEntries(es []entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
