package hostsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/hostsim/content"
)

// issuedKey is one key handed out by POST /secure-channel/key. The secret
// lives only inside the signer.
type issuedKey struct {
	guid        string // lower-cased
	incarnation uint32
	issued      time.Time
	key         []byte // 32 bytes
}

// maxIssuedKeys bounds the keys kept for attestation; a guest that keeps
// requesting keys without attesting them cannot grow the emulator.
const maxIssuedKeys = 256

// keyStore is the host's view of the secure channel (host-protocol.md
// §6.2): keys issued, the attested key that requests are verified with and
// whether a rotation is pending. Guarded by Emulator.mu.
type keyStore struct {
	issued  map[string]*issuedKey
	order   []string   // issue order, for eviction
	current *issuedKey // attested; requests verify with it
	// previous was attested before current; requests signed with it are
	// accepted until previousUntil (State.PreviousKeyGraceSeconds).
	previous      *issuedKey
	previousUntil time.Time
	// rotating is set by a key incarnation change: the status reports
	// keyGuid null until a new key is attested, current stays valid.
	rotating bool
	next     *NextKey // test-chosen material for the next issuance
}

func newKeyStore() keyStore { return keyStore{issued: make(map[string]*issuedKey)} }

// verifier returns the key for guid if it is the attested key, or the
// previously attested one within its grace period.
func (k *keyStore) verifier(guid string, now time.Time) []byte {
	switch {
	case k.current != nil && k.current.guid == guid:
		return k.current.key
	case k.previous != nil && k.previous.guid == guid && now.Before(k.previousUntil):
		return k.previous.key
	}
	return nil
}

// issuedKey returns the key of any issued key (for attestation).
func (k *keyStore) issuedKey(guid string) []byte {
	if ik := k.issued[guid]; ik != nil {
		return ik.key
	}
	return nil
}

func (k *keyStore) rotate() {
	if k.current != nil {
		k.rotating = true
	}
}

// reportedGUID is the status' keyGuid: the attested key, or null before
// the first attestation and during a rotation.
func (k *keyStore) reportedGUID() *string {
	if k.current == nil || k.rotating {
		return nil
	}
	g := k.current.guid
	return &g
}

// issue creates a key, from the test-chosen material if any.
func (k *keyStore) issue(incarnation uint32, now time.Time) (*hostproto.Key, error) {
	var guid, keyHex string
	if k.next != nil {
		guid, keyHex = strings.ToLower(k.next.GUID), k.next.Key
		k.next = nil
	} else {
		var b [16 + hostproto.KeySize]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("random key: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40 // version 4
		b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
		h := hex.EncodeToString(b[:16])
		guid = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		// Upper case, as in GPA's examples: guests must decode any case.
		keyHex = strings.ToUpper(hex.EncodeToString(b[16:]))
	}
	key, err := hostproto.DecodeKeyHex(keyHex)
	if err != nil {
		return nil, fmt.Errorf("issue key: %w", err)
	}
	if !hostproto.ValidGUID(guid) {
		return nil, fmt.Errorf("issue key: guid %q: want a GUID such as e3882f98-da8d-4410-8394-06c23462781c", guid)
	}
	if len(k.order) >= maxIssuedKeys {
		for i, g := range k.order {
			if k.current == nil || g != k.current.guid {
				delete(k.issued, g)
				k.order = append(k.order[:i], k.order[i+1:]...)
				break
			}
		}
	}
	if _, dup := k.issued[guid]; !dup {
		k.order = append(k.order, guid)
	}
	k.issued[guid] = &issuedKey{guid: guid, incarnation: incarnation, issued: now, key: key}
	inc := incarnation
	return &hostproto.Key{
		AuthorizationScheme: hostproto.Scheme,
		IncarnationID:       &inc,
		GUID:                guid,
		Issued:              now.Format("2006-01-02T15:04:05Z"),
		Key:                 keyHex,
	}, nil
}

// attest makes an issued key the current one and ends a rotation.
func (k *keyStore) attest(guid string, now time.Time, grace time.Duration) bool {
	ik := k.issued[guid]
	if ik == nil {
		return false
	}
	if k.current != nil && k.current != ik {
		k.previous, k.previousUntil = k.current, now.Add(grace)
	}
	k.current = ik
	k.rotating = false
	return true
}

// renderStatus builds the KeyStatus payload from the state (modes are the
// source of truth) and the key store. Caller holds mu.
func (e *Emulator) renderStatus() []byte {
	st := &e.state
	if len(st.StatusOverride) > 0 {
		return st.StatusOverride
	}
	inc := st.KeyIncarnationID
	ks := hostproto.KeyStatus{
		AuthorizationScheme:       hostproto.Scheme,
		KeyDeliveryMethod:         "http",
		KeyIncarnationID:          &inc,
		KeyGUID:                   e.keys.reportedGUID(),
		RequiredClaimsHeaderPairs: []string{"isRoot"},
		Version:                   st.Version,
	}
	if st.Version == hostproto.Version1 {
		s := v1State(st.Modes)
		ks.SecureChannelState = &s
	} else {
		enabled := st.SecureChannelEnabled
		ks.SecureChannelEnabled = &enabled
		r := &hostproto.AuthorizationRules{
			IMDS:       withMode(st.AuthorizationRules.IMDS, st.Modes.IMDS),
			WireServer: withMode(st.AuthorizationRules.WireServer, st.Modes.WireServer),
			HostGA:     withMode(st.AuthorizationRules.HostGA, st.Modes.HostGAPlugin),
		}
		if r.IMDS != nil || r.WireServer != nil || r.HostGA != nil {
			ks.AuthorizationRules = r
		}
	}
	b, err := json.Marshal(ks)
	if err != nil {
		panic(fmt.Sprintf("hostsim: marshal key Status: %v", err)) // plain structs cannot fail
	}
	return b
}

// v1State is the closest v1 secureChannelState for the modes
// (host-protocol.md §4): v1 cannot express WireServer audit or an IMDS mode
// independent of WireServer, so GET /state reports the modes a guest derives
// (guestModes) beside the emulator's own.
func v1State(m hostproto.Modes) string {
	switch {
	case m.WireServer == hostproto.ModeEnforce && m.IMDS == hostproto.ModeEnforce:
		return "WireserverAndImds"
	case m.WireServer == hostproto.ModeEnforce:
		return "Wireserver"
	}
	return "Disabled"
}

func withMode(it *hostproto.AuthorizationItem, m hostproto.Mode) *hostproto.AuthorizationItem {
	if it == nil {
		return nil
	}
	c := *it
	c.Mode = m.String()
	return &c
}

// serveWireServer routes the secure channel here and everything else to
// package content.
func (e *Emulator) serveWireServer(req *rawhttp.Request) content.Response {
	path := lowerPath(req.Target)
	switch {
	case path == "/secure-channel/status" && req.Method == "GET":
		return e.serveStatus()
	case path == "/secure-channel/key" && req.Method == "POST":
		return e.serveKey(req)
	case strings.HasPrefix(path, "/secure-channel/"):
		return content.Error(404, "not-found", "secure channel: want GET /secure-channel/status, POST /secure-channel/key or POST /secure-channel/key/{guid}/key-attestation")
	}
	return content.WireServer(req)
}

// serveStatus answers GET /secure-channel/status.
func (e *Emulator) serveStatus() content.Response {
	e.mu.Lock()
	defer e.mu.Unlock()
	return content.JSON(200, e.renderStatus())
}

// serveKey answers POST /secure-channel/key: the body must be
// {"authorizationScheme": "Azure-HMAC-SHA256"} (host-protocol.md §2).
func (e *Emulator) serveKey(req *rawhttp.Request) content.Response {
	var body struct {
		AuthorizationScheme string `json:"authorizationScheme"`
	}
	if err := json.Unmarshal(req.Body, &body); err != nil || body.AuthorizationScheme != hostproto.Scheme {
		return content.Error(400, "bad-request", fmt.Sprintf("body: want {\"authorizationScheme\": %q}", hostproto.Scheme))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k, err := e.keys.issue(e.state.KeyIncarnationID, e.hostNow())
	if err != nil {
		return content.Error(500, "internal", err.Error())
	}
	e.log.WithField("guid", k.GUID).Info("key issued")
	b, err := json.Marshal(k)
	if err != nil {
		return content.Error(500, "internal", "marshal key")
	}
	return content.JSON(200, b)
}

// serveAttestation answers POST /secure-channel/key/{guid}/key-attestation
// after decide verified its signature with that key.
func (e *Emulator) serveAttestation(req *rawhttp.Request) content.Response {
	guid := attestationGUID(lowerPath(req.Target))
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.keys.attest(guid, e.hostNow(), time.Duration(e.state.PreviousKeyGraceSeconds)*time.Second) {
		return content.Error(404, ReasonUnknownKey, "key "+guid+" was not issued (or was evicted); acquire a new key")
	}
	e.log.WithField("guid", guid).Info("key attested: status now reports it as keyGuid")
	return content.Response{Status: 200}
}
