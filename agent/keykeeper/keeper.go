package keykeeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/sign"
)

// Defaults of Options (host-protocol.md §7.1, agent.md §5.5).
const (
	DefaultPollInterval     = 15 * time.Second
	DefaultFastPollInterval = time.Second
	DefaultFastPollWindow   = 5 * time.Minute
	DefaultCallTimeout      = 30 * time.Second
	DefaultBackoffMin       = time.Second
	DefaultHostHeader       = "168.63.129.16"
)

// Options configures a Keeper. Zero values take the defaults.
type Options struct {
	// WireServer is WireServer's host:port (configuration
	// endpoints.wireServer); required.
	WireServer string
	// HostHeader is the Host header of host calls; "" means 168.63.129.16.
	HostHeader string
	// KeysDir is the keys directory, <stateDir>/keys; required. New
	// creates it (root 0700) or fixes its mode and owner.
	KeysDir string
	// ExemptMark is the SO_MARK set on the keeper's sockets so that the
	// redirector leaves them alone (ebpf.md §6.5); 0 sets none.
	ExemptMark uint32

	// PollInterval is the status poll interval (pollIntervalSeconds);
	// default 15 s.
	PollInterval time.Duration
	// FastPollInterval is used while no valid status was received and the
	// keeper is younger than FastPollWindow; defaults 1 s and 5 min.
	FastPollInterval time.Duration
	FastPollWindow   time.Duration
	// CallTimeout bounds every host call (real time); default 30 s.
	CallTimeout time.Duration
	// BackoffMin and BackoffMax bound the exponential back-off after
	// failed iterations; defaults 1 s and PollInterval. Each delay is
	// jittered uniformly in [d/2, d).
	BackoffMin time.Duration
	BackoffMax time.Duration

	// Clock drives polling, back-off and host time; nil means SystemClock.
	Clock Clock
	// Jitter returns a number in [0, 1); nil means math/rand/v2.
	Jitter func() float64
	// Log receives operational logs; nil discards them. Key material is
	// never logged; the key guid is.
	Log logrus.FieldLogger
	// OnState, if set, receives every State from the keeper's goroutine,
	// once per iteration (and on a wake-up that resets the state), in Seq
	// order. It must not block for long; swap an atomic and return.
	OnState func(*State)
}

// Keeper polls the secure channel and latches, persists and rotates the
// key. Create it with New and run it with Run; Current, Wake and the
// OnState callback may be used from any goroutine.
type Keeper struct {
	opts   Options
	clock  Clock
	log    logrus.FieldLogger
	client *hostClient
	store  *Store

	current atomic.Pointer[State]
	wake    chan struct{}

	// Owned by the Run goroutine.
	st            State  // being built for the next delivery
	prevGUID      string // the key replaced by the current one, kept on disk
	rotatedFor    *uint32
	lastLoggedErr string
}

// New validates the options and prepares the keys directory.
func New(opts Options) (*Keeper, error) {
	if opts.WireServer == "" {
		return nil, errors.New("keykeeper: WireServer address is empty: set endpoints.wireServer (host:port)")
	}
	if opts.KeysDir == "" {
		return nil, errors.New("keykeeper: KeysDir is empty: set it to <stateDir>/keys")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.PollInterval, DefaultPollInterval)
	def(&opts.FastPollInterval, DefaultFastPollInterval)
	def(&opts.FastPollWindow, DefaultFastPollWindow)
	def(&opts.CallTimeout, DefaultCallTimeout)
	def(&opts.BackoffMin, DefaultBackoffMin)
	def(&opts.BackoffMax, opts.PollInterval)
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	if opts.HostHeader == "" {
		opts.HostHeader = DefaultHostHeader
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	store, fixed, err := OpenStore(opts.KeysDir)
	if err != nil {
		return nil, fmt.Errorf("keykeeper: %w", err)
	}
	for _, f := range fixed {
		log.WithField("dir", opts.KeysDir).Warn("keys directory: " + f)
	}
	k := &Keeper{
		opts:   opts,
		clock:  opts.Clock,
		log:    log.WithField("module", "keykeeper"),
		client: newHostClient(opts.WireServer, opts.HostHeader, opts.CallTimeout, opts.ExemptMark),
		store:  store,
		wake:   make(chan struct{}, 1),
	}
	k.st.SecureChannelState = hostproto.StateUnknown
	first := k.st
	k.current.Store(&first)
	return k, nil
}

// Current returns the latest delivered State (Seq 0, "Unknown", before the
// first iteration).
func (k *Keeper) Current() *State { return k.current.Load() }

// Store returns the key store.
func (k *Keeper) Store() *Store { return k.store }

// Wake asks for an immediate poll, as a /provision notification does
// (host-protocol.md §7.1, agent.md §3.3): while the state is Unknown or
// disabled the keeper clears Latched, forgets the status, delivers that
// and polls at once; in a stable state it is ignored and the sleep goes on.
func (k *Keeper) Wake() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// Run polls until ctx is done, then returns nil. It must be called once.
func (k *Keeper) Run(ctx context.Context) error {
	start := k.clock.Now()
	for {
		delay := k.iterate(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		if !k.sleep(ctx, delay) {
			return nil
		}
	}
}

// sleep waits for delay, a wake-up that calls for a poll, or ctx; false
// means ctx is done.
func (k *Keeper) sleep(ctx context.Context, delay time.Duration) bool {
	t := k.clock.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C():
			return true
		case <-k.wake:
			if k.st.Status != nil && !k.st.Disabled() {
				k.log.Debug("wake-up in a stable state: sleep goes on")
				continue
			}
			k.log.Info("wake-up: state reset to Unknown, polling now")
			k.st.Status = nil
			k.st.SecureChannelState = hostproto.StateUnknown
			k.st.HostModes = hostproto.Modes{}
			k.st.Latched = false
			k.deliver()
			return true
		}
	}
}

// iterate runs one poll iteration (host-protocol.md §7.2), delivers the
// resulting State and returns the delay before the next one.
func (k *Keeper) iterate(ctx context.Context, start time.Time) time.Duration {
	k.st.Warning = ""
	err := k.poll(ctx)
	now := k.clock.Now()
	if ctx.Err() != nil {
		return 0 // shutting down: no state from a cancelled iteration
	}
	var delay time.Duration
	if err != nil {
		k.st.ConsecutiveFailures++
		k.st.LastError = err
		delay = k.backoff(k.st.ConsecutiveFailures)
		if msg := err.Error(); msg != k.lastLoggedErr || k.st.ConsecutiveFailures%20 == 1 {
			k.log.WithError(err).WithField("failures", k.st.ConsecutiveFailures).WithField("retryIn", delay.String()).Warn("secure channel poll failed; previous state and key kept")
			k.lastLoggedErr = msg
		}
	} else {
		if k.st.ConsecutiveFailures > 0 {
			k.log.WithField("failures", k.st.ConsecutiveFailures).Info("secure channel poll recovered")
		}
		k.st.ConsecutiveFailures = 0
		k.st.LastError = nil
		k.st.LastSuccess = now
		k.lastLoggedErr = ""
		delay = k.opts.PollInterval
	}
	if k.st.Status == nil && now.Sub(start) < k.opts.FastPollWindow {
		delay = min(delay, k.opts.FastPollInterval)
	}
	k.st.NextPoll = delay
	k.st.Time = now
	k.deliver()
	return delay
}

// backoff is min(BackoffMin·2^(n-1), BackoffMax), jittered in [d/2, d).
func (k *Keeper) backoff(failures int) time.Duration {
	d := k.opts.BackoffMin
	for i := 1; i < failures && d < k.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, k.opts.BackoffMax)
	return d/2 + time.Duration(k.opts.Jitter()*float64(d/2))
}

// deliver publishes a copy of the state being built.
func (k *Keeper) deliver() {
	k.st.Seq++
	s := k.st
	k.current.Store(&s)
	if k.opts.OnState != nil {
		k.opts.OnState(&s)
	}
}

// hostDateNow is the x-ms-azure-host-date of the next host call.
func (k *Keeper) hostDateNow() string { return k.st.HostDate(k.clock.Now()) }

// poll fetches and applies the status, then latches the key.
func (k *Keeper) poll(ctx context.Context) error {
	ans, ks, err := k.client.status(ctx, k.hostDateNow(), k.st.Signer)
	if ans != nil {
		k.syncHostTime(ans)
	}
	if err != nil {
		return err
	}
	k.applyStatus(ks)
	if k.st.Disabled() {
		if k.st.Signer != nil {
			k.log.WithField("guid", k.st.KeyGUID).Info("secure channel disabled: key cleared from memory (file kept)")
		}
		k.setKey(nil, nil)
		k.st.Latched = true
		return nil
	}
	return k.latch(ctx, ks)
}

// syncHostTime refreshes the host-time offset from a status answer when
// the last synchronisation is older than 15 minutes (§7.4).
func (k *Keeper) syncHostTime(a *hostAnswer) {
	now := k.clock.Now()
	if !k.st.HostTimeSyncedAt.IsZero() && now.Sub(k.st.HostTimeSyncedAt) < hostTimeResync {
		return
	}
	t, ok := hostDate(a.header)
	if !ok {
		return
	}
	k.st.HostTimeOffset = t.Sub(now.Round(0).Truncate(time.Second))
	k.st.HostTimeSyncedAt = now
}

// applyStatus makes a validated status the current one.
func (k *Keeper) applyStatus(ks *hostproto.KeyStatus) {
	old := k.st.SecureChannelState
	k.st.Status = ks
	k.st.SecureChannelState = ks.StateString()
	k.st.HostModes = ks.Modes()
	if old != k.st.SecureChannelState {
		k.log.WithFields(logrus.Fields{"from": old, "to": k.st.SecureChannelState}).Info("secure channel state changed")
	}
}

// latch runs the key step of host-protocol.md §6.2: reuse the key in
// memory if the host expects it, else the persisted file of the host's
// guid, else acquire, persist and attest a new key. A rotation (keyGuid
// null or another guid, or a new key incarnation) keeps the old key
// signing until the new one is attested.
func (k *Keeper) latch(ctx context.Context, ks *hostproto.KeyStatus) error {
	rotate := k.incarnationChanged(ks)
	if !rotate && k.st.Signer != nil && ks.KeyGUID != nil && strings.EqualFold(*ks.KeyGUID, k.st.KeyGUID) {
		k.st.Latched = true
		return nil
	}
	if !rotate && ks.KeyGUID != nil && *ks.KeyGUID != hostproto.NilGUID {
		key, err := k.store.Load(*ks.KeyGUID)
		var kfe *KeyFileError
		switch {
		case err == nil:
			if err := k.setKey(key, nil); err != nil {
				return err
			}
			k.st.Latched = true
			k.log.WithField("guid", key.GUID).Info("key loaded from disk (no attestation needed)")
			return nil
		case errors.As(err, &kfe):
			k.st.Warning = err.Error()
			k.log.WithError(err).Warn("refusing to use the key file; acquiring a new key")
		case !errors.Is(err, ErrNoKeyFile):
			return err
		}
	}
	return k.acquire(ctx, ks)
}

// incarnationChanged reports whether the host's key incarnation differs
// from the latched key's while the host still names that key: a rotation,
// started once per incarnation value so a host that keeps issuing keys of
// another incarnation cannot make the keeper loop.
func (k *Keeper) incarnationChanged(ks *hostproto.KeyStatus) bool {
	in, have := ks.KeyIncarnationID, k.st.KeyIncarnationID
	if k.st.Signer == nil || in == nil || have == nil || *in == *have {
		return false
	}
	if k.rotatedFor != nil && *k.rotatedFor == *in {
		return false
	}
	return true
}

// acquire gets, persists and attests a new key and makes it current.
func (k *Keeper) acquire(ctx context.Context, ks *hostproto.KeyStatus) error {
	key, err := k.client.acquire(ctx, k.hostDateNow(), k.st.Signer)
	if err != nil {
		return err
	}
	log := k.log.WithField("guid", key.GUID)
	if err := k.store.Save(key); err != nil {
		return err
	}
	s, err := sign.NewSigner(key.Key, key.GUID)
	if err != nil {
		return fmt.Errorf("key %s: %w", key.GUID, err)
	}
	if err := k.client.attest(ctx, k.hostDateNow(), s); err != nil {
		return err
	}
	if ks.KeyIncarnationID != nil {
		in := *ks.KeyIncarnationID
		k.rotatedFor = &in
	}
	old := k.st.KeyGUID
	if err := k.setKey(key, s); err != nil {
		return err
	}
	k.st.Latched = true
	log.WithField("previous", old).Info("new key acquired and attested")
	if old != "" && !strings.EqualFold(old, key.GUID) {
		k.prevGUID = old
	}
	deleted, err := k.store.Prune(key.GUID, k.prevGUID)
	if len(deleted) > 0 {
		log.WithField("deleted", deleted).Info("superseded key files deleted")
	}
	if err != nil {
		k.st.Warning = err.Error()
		log.WithError(err).Warn("deleting superseded key files")
	}
	return nil
}

// setKey makes key current (nil clears it); s is its signer if already
// built.
func (k *Keeper) setKey(key *hostproto.Key, s *sign.Signer) error {
	if key == nil {
		k.st.Signer, k.st.KeyGUID, k.st.KeyIncarnationID, k.st.KeyIssued = nil, "", nil, ""
		k.st.KeyLatchedAt = time.Time{}
		return nil
	}
	if s == nil {
		var err error
		if s, err = sign.NewSigner(key.Key, key.GUID); err != nil {
			return fmt.Errorf("key %s: %w", key.GUID, err)
		}
	}
	k.st.Signer, k.st.KeyGUID, k.st.KeyIssued = s, key.GUID, key.Issued
	k.st.KeyIncarnationID = nil
	if key.IncarnationID != nil {
		in := *key.IncarnationID
		k.st.KeyIncarnationID = &in
	}
	k.st.KeyLatchedAt = k.clock.Now()
	return nil
}
