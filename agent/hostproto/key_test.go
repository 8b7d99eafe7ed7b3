package hostproto

import (
	"fmt"
	"strings"
	"testing"
)

const testKeyHex = "4A404E635266556A586E3272357538782F413F4428472B4B6250645367566B59"

func TestParseKey(t *testing.T) {
	good := `{"authorizationScheme":"Azure-HMAC-SHA256","incarnationId":1,"guid":"e3882f98-da8d-4410-8394-06c23462781c","issued":"2025-04-23T12:00:00Z","key":"` + testKeyHex + `","unknown":1}`
	k, err := ParseKey([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Bytes()
	if err != nil || len(b) != KeySize {
		t.Fatalf("Bytes() = %d bytes, %v", len(b), err)
	}
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", *k, *k, *k, k)} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(testKeyHex[:16])) {
			t.Errorf("formatted key leaks the secret: %s", s)
		}
	}

	bad := []struct{ name, json, want string }{
		{"scheme", `{"authorizationScheme":"x","guid":"e3882f98-da8d-4410-8394-06c23462781c","key":"` + testKeyHex + `"}`, "authorizationScheme"},
		{"nil guid", `{"authorizationScheme":"Azure-HMAC-SHA256","guid":"00000000-0000-0000-0000-000000000000","key":"` + testKeyHex + `"}`, "non-nil GUID"},
		{"short key", `{"authorizationScheme":"Azure-HMAC-SHA256","guid":"e3882f98-da8d-4410-8394-06c23462781c","key":"abcd"}`, "want 64 hex characters"},
		{"non-hex key", `{"authorizationScheme":"Azure-HMAC-SHA256","guid":"e3882f98-da8d-4410-8394-06c23462781c","key":"` + strings.Repeat("zz", 32) + `"}`, "not hexadecimal"},
		{"garbage", `[`, "key:"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "zzzz") {
				t.Errorf("error echoes key material: %v", err)
			}
		})
	}
}

func TestValidGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"e3882f98-da8d-4410-8394-06c23462781c": true,
		"E3882F98-DA8D-4410-8394-06C23462781C": true,
		"e3882f98da8d4410839406c23462781c":     false,
		"e3882f98-da8d-4410-8394-06c23462781g": false,
		"":                                     false,
	} {
		if got := ValidGUID(s); got != want {
			t.Errorf("ValidGUID(%q) = %v; want %v", s, got, want)
		}
	}
}
