package hostproto

import (
	"encoding/json"
	"testing"
)

// FuzzParseKeyStatus: host payloads never panic the parser, and a payload
// that validates renders a state string and modes consistently.
func FuzzParseKeyStatus(f *testing.F) {
	f.Add([]byte(v2Example))
	f.Add([]byte(v1Example))
	f.Add([]byte(`{"version":"2.0","secureChannelEnabled":true,"authorizationRules":{"imds":{"mode":"x","rules":{"privileges":[{"name":"p","path":"/"}]}}}}`))
	f.Add([]byte(`{"keyIncarnationId": 1e99}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseKeyStatus(data)
		if err != nil {
			return
		}
		sum := s.Summarize()
		if sum.SecureChannelState == "" {
			t.Fatal("empty state string for a valid payload")
		}
		if sum.SecureChannelState == "disabled" && s.Version == Version2 && sum.EffectiveModes != (Modes{}) {
			t.Fatalf("v2 state disabled but modes %+v", sum.EffectiveModes)
		}
		if _, err := json.Marshal(sum); err != nil {
			t.Fatal(err)
		}
		ParseKey(data)
	})
}
