package hostproto

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// KeySize is the length of the HMAC key in bytes (64 hex characters).
const KeySize = 32

// NilGUID is the "no key" sentinel guid.
const NilGUID = "00000000-0000-0000-0000-000000000000"

// Key is the response of POST /secure-channel/key and the content of a
// <guid>.key file (host-protocol.md §6.1). Its String and GoString never
// print the secret, so a Key can be passed to a logger by mistake without
// leaking it.
type Key struct {
	AuthorizationScheme string  `json:"authorizationScheme"`
	IncarnationID       *uint32 `json:"incarnationId,omitempty"`
	GUID                string  `json:"guid"`
	Issued              string  `json:"issued"`
	Key                 string  `json:"key"`
}

// ParseKey decodes and validates a Key. Unknown fields are ignored.
func ParseKey(data []byte) (*Key, error) {
	var k Key
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return &k, nil
}

// Validate checks the scheme, the guid and the key material.
func (k *Key) Validate() error {
	if k.AuthorizationScheme != Scheme {
		return fmt.Errorf("key: authorizationScheme %q: want %q", k.AuthorizationScheme, Scheme)
	}
	if !ValidGUID(k.GUID) || k.GUID == NilGUID {
		return fmt.Errorf("key: guid %q: want a non-nil GUID", k.GUID)
	}
	if _, err := DecodeKeyHex(k.Key); err != nil {
		return fmt.Errorf("key %s: %w", k.GUID, err)
	}
	return nil
}

// Bytes returns the decoded 32-byte HMAC key.
func (k *Key) Bytes() ([]byte, error) { return DecodeKeyHex(k.Key) }

// String describes the key without its secret.
func (k Key) String() string {
	inc := "none"
	if k.IncarnationID != nil {
		inc = fmt.Sprint(*k.IncarnationID)
	}
	return fmt.Sprintf("key{guid=%s incarnation=%s issued=%s}", k.GUID, inc, k.Issued)
}

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return k.String() }

// DecodeKeyHex decodes a 64-character hex key (any case). Its error never
// contains the input.
func DecodeKeyHex(s string) ([]byte, error) {
	if len(s) != 2*KeySize {
		return nil, fmt.Errorf("key material: want %d hex characters, got %d", 2*KeySize, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key material: not hexadecimal")
	}
	return b, nil
}

// ValidGUID reports whether s has the 8-4-4-4-12 hex form of a GUID.
func ValidGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
