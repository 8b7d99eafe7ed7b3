package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 7, 22, 10, 0, 0, 0, time.UTC)

// waagentStatus is the subset of the status document waagent validates.
type waagentStatus []struct {
	Version      float64 `json:"version"`
	TimestampUTC string  `json:"timestampUTC"`
	Status       struct {
		Name                     string `json:"name"`
		Operation                string `json:"operation"`
		Status                   string `json:"status"`
		Code                     int    `json:"code"`
		ConfigurationAppliedTime string `json:"configurationAppliedTime"`
		FormattedMessage         struct {
			Lang    string `json:"lang"`
			Message string `json:"message"`
		} `json:"formattedMessage"`
		Substatus []struct {
			Name             string `json:"name"`
			Status           string `json:"status"`
			Code             int    `json:"code"`
			FormattedMessage struct {
				Message string `json:"message"`
			} `json:"formattedMessage"`
		} `json:"substatus"`
	} `json:"status"`
}

func TestWriteStatus(t *testing.T) {
	dir := t.TempDir()
	r := Report{Name: "P.T", Operation: "Enable", State: Error, Code: 11, Message: "imds.mode: bad", AppliedAt: now,
		Substatus: ErrorSubstatuses(fmt.Errorf("agent down"))}
	if err := Write(dir, 3, r, now); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "3.status"))
	if err != nil {
		t.Fatal(err)
	}
	var doc waagentStatus
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	s := doc[0].Status
	if len(doc) != 1 || doc[0].Version != 1.0 || doc[0].TimestampUTC != "2026-07-22T10:00:00Z" ||
		s.Name != "P.T" || s.Operation != "Enable" || s.Status != "error" || s.Code != 11 ||
		s.FormattedMessage.Lang != "en-US" || s.FormattedMessage.Message != "imds.mode: bad" ||
		s.ConfigurationAppliedTime != "2026-07-22T10:00:00Z" || len(s.Substatus) != 3 ||
		s.Substatus[0].Status != "transitioning" || s.Substatus[0].Code != 4 {
		t.Fatalf("got %s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestMarshalRejectsUnknownStates(t *testing.T) {
	if _, err := Marshal(Report{State: "ready"}, now); err == nil {
		t.Fatal("accepted status ready")
	}
	if _, err := Marshal(Report{State: Success, Substatus: []Substatus{{Name: "x", State: "Success"}}}, now); err == nil {
		t.Fatal("accepted substatus Success (waagent rejects the whole file)")
	}
}

func TestMarshalFitsLimit(t *testing.T) {
	big := strings.Repeat("é\"x", 60000)
	r := Report{State: Success, Message: "ok", Substatus: []Substatus{
		{Name: "a", State: Success, Message: big}, {Name: "b", State: Success, Message: big[:3000]},
	}}
	out, err := Marshal(r, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > MaxFileSize {
		t.Fatalf("got %d bytes; limit %d", len(out), MaxFileSize)
	}
	var doc waagentStatus
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(doc[0].Status.Substatus[0].FormattedMessage.Message, truncNote) ||
		doc[0].Status.Substatus[1].FormattedMessage.Message != big[:3000] {
		t.Fatal("the longest message was not the one cut")
	}
}

func TestHeartbeat(t *testing.T) {
	p := filepath.Join(t.TempDir(), "heartbeat.log")
	for _, tc := range []struct {
		ready bool
		want  string
	}{
		{true, `[{"version":1.0,"heartbeat":{"status":"Ready","code":0,"formattedMessage":{"lang":"en-US","message":"m"}}}]`},
		{false, `[{"version":1.0,"heartbeat":{"status":"NotReady","code":0,"formattedMessage":{"lang":"en-US","message":"m"}}}]`},
	} {
		if err := WriteHeartbeat(p, tc.ready, "m"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != tc.want {
			t.Errorf("got %s; want %s", got, tc.want)
		}
	}
}

func TestEvents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "events")
	e := &Events{Folder: dir, Version: "1.2.3", Now: func() time.Time { return now }}
	for range 3 {
		if err := e.Emit("Enable", LevelInformational, strings.Repeat("x", 5000)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 3 {
		t.Fatalf("got %v, %v; want 3 files", entries, err)
	}
	pattern := regexp.MustCompile(`^\d+\.json$`)
	for _, ent := range entries {
		if !pattern.MatchString(ent.Name()) {
			t.Fatalf("file %q does not match waagent's pattern", ent.Name())
		}
		data, _ := os.ReadFile(filepath.Join(dir, ent.Name()))
		var ev map[string]string
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"Version", "Timestamp", "TaskName", "EventLevel", "Message", "EventPid", "EventTid", "OperationId"} {
			if ev[k] == "" {
				t.Errorf("event lacks %s: %s", k, data)
			}
		}
		if len(ev["Message"]) > maxMessage || ev["Version"] != "1.2.3" || ev["Timestamp"] != "2026-07-22T10:00:00.000Z" {
			t.Errorf("event %s", data)
		}
		if len(data) > 6144 {
			t.Errorf("event of %d characters exceeds 6144", len(data))
		}
	}
	var none *Events
	if err := none.Emit("x", LevelError, "y"); err != nil {
		t.Fatal(err)
	}
}

const aggregateDoc = `{
  "timestamp": "2026-07-22T09:59:00.123",
  "proxyAgentStatus": {"version": "1.0.0", "status": "SUCCESS",
    "keyLatchStatus": {"status": "RUNNING", "message": "ok", "states": {"keyGuid": "g"}},
    "proxyConnectionsCount": 3},
  "proxyConnectionSummary": [{"userName":"a","count":1},{"userName":"b","count":5}],
  "failedAuthenticateSummary": []
}`

func TestAggregate(t *testing.T) {
	a, err := ReadAggregate(strings.NewReader(aggregateDoc))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Check(now, 5*time.Minute, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		now     time.Time
		version string
		want    string
	}{
		{"stale", now.Add(10 * time.Minute), "1.0.0", "old"},
		{"other version", now, "1.0.1", "upgrade has not finished"},
	} {
		if err := a.Check(tc.now, 5*time.Minute, tc.version); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want %q", tc.name, err, tc.want)
		}
	}
	subs := a.Substatuses()
	if len(subs) != 3 || subs[0].Name != SubAgentStatus || !strings.HasPrefix(subs[0].Message, `{"version":"1.0.0"`) ||
		subs[1].Message != `[{"userName":"b","count":5},{"userName":"a","count":1}]` || subs[2].Message != "[]" {
		t.Fatalf("got %+v", subs)
	}
	bad := strings.Replace(aggregateDoc, `"SUCCESS"`, `"ERROR"`, 1)
	a, _ = ReadAggregate(strings.NewReader(bad))
	if err := a.Check(now, 5*time.Minute, ""); err == nil || !strings.Contains(err.Error(), "ERROR") {
		t.Fatalf("got %v", err)
	}
	for _, doc := range []string{`{}`, `[`, `{"proxyAgentStatus":{},"timestamp":"yesterday"}`} {
		if _, err := ReadAggregate(strings.NewReader(doc)); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}

func TestSummaryLimits(t *testing.T) {
	var conns, failed []string
	for i := range 300 {
		entry := fmt.Sprintf(`{"userName":"u%d","processCmdLine":"%s","count":%d}`, i, strings.Repeat("c", 900), i)
		conns = append(conns, entry)
		failed = append(failed, entry)
	}
	doc := `{"timestamp":"2026-07-22T10:00:00Z","proxyAgentStatus":{"status":"SUCCESS"},"proxyConnectionSummary":[` +
		strings.Join(conns, ",") + `],"failedAuthenticateSummary":[` + strings.Join(failed, ",") + `]}`
	a, err := ReadAggregate(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	subs := a.Substatuses()
	if !strings.Contains(subs[1].Message, "omitted") {
		t.Errorf("the connection summary was not replaced: %.80s", subs[1].Message)
	}
	if total := len(subs[1].Message) + len(subs[2].Message); total > maxSummaryBytes {
		t.Errorf("summaries are %d bytes; limit %d", total, maxSummaryBytes)
	}
	var top []struct{ Count int }
	if err := json.Unmarshal([]byte(subs[2].Message), &top); err != nil || len(top) == 0 || top[0].Count != 299 {
		t.Fatalf("failed summary %v, %v", top, err)
	}
	if _, err := Marshal(Report{State: Success, Substatus: subs}, now); err != nil {
		t.Fatal(err)
	}
}

func TestTracker(t *testing.T) {
	var tr Tracker
	steps := []struct {
		ok   bool
		want State
	}{{true, Success}, {false, Transitioning}}
	for i := 1; i < FailuresToError-1; i++ {
		steps = append(steps, struct {
			ok   bool
			want State
		}{false, Transitioning})
	}
	steps = append(steps, []struct {
		ok   bool
		want State
	}{{false, Error}, {false, Error}, {true, Transitioning}, {true, Success}}...)
	for i, s := range steps {
		if got := tr.Observe(s.ok); got != s.want {
			t.Fatalf("step %d (ok=%v): got %s; want %s", i, s.ok, got, s.want)
		}
	}
}

func FuzzReadAggregate(f *testing.F) {
	f.Add([]byte(aggregateDoc))
	f.Add([]byte(`{"timestamp":"x","proxyAgentStatus":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadAggregate(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = a.Check(now, time.Minute, "1")
		if _, err := Marshal(Report{State: Success, Substatus: a.Substatuses()}, now); err != nil {
			t.Fatalf("substatuses of a parsed document do not marshal: %v", err)
		}
	})
}
