package limits

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/onecommons/commonsid/internal/metrics"
)

// Policy is the progressive delay of one kind of failure budget: the first
// Free failures cost nothing; from then on each further attempt must wait
// 2^n × Step after the last failure (n = failures − Free + 1; with the
// default Step of a second: 2 s, 4 s, 8 s …) up to MaxDelay. A key whose last failure is older than its delay
// plus Window starts again from zero. An attempt counts when it is taken
// (so that concurrent attempts cannot slip past the count) and is taken
// back when it succeeds or reaches no verdict.
type Policy struct {
	// Name keeps the keys of different budgets apart.
	Name     string
	Free     int
	Window   time.Duration
	MaxDelay time.Duration
	// Step is the unit of the doubling; zero is one second. A budget of
	// notices (one mail an hour) uses a larger one.
	Step time.Duration
}

// Once is the budget of something allowed once per every (a notice by
// mail): the first take counts, the next must wait every after it.
func Once(name string, every time.Duration) Policy {
	return Policy{Name: name, Free: 1, Step: every / 2, MaxDelay: every}
}

// The budgets of password checks.
var (
	// Account: every sign-in to one account (its handle and every DID
	// share it) from devices the account does not know.
	Account = Policy{Name: "account", Free: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
	// Source: every sign-in from one client address, whatever account.
	Source = Policy{Name: "source", Free: 20, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
	// Device: sign-ins to one account from a device it knows (a signed
	// device cookie); an attacker's failures elsewhere do not reach it.
	Device = Policy{Name: "device", Free: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
	// Check: the password asked again behind a session (change it,
	// delete the account, export it, re-authenticate).
	Check = Policy{Name: "check", Free: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
	// Phrase: checks of an account's recovery phrase (behind a session,
	// or in place of a lost second factor), which count whatever their
	// answer.
	Phrase = Policy{Name: "phrase", Free: 10, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
	// SecondFactor: the codes (authenticator app and recovery codes) of
	// one account at the second-factor step of sign-in, from every source
	// and every pending sign-in; a right code clears it.
	SecondFactor = Policy{Name: "second-factor", Free: 10, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
)

// maxDelaySteps bounds the doubling: 2^20 s is beyond any MaxDelay.
const maxDelaySteps = 20

// Delay is how long after the last of failures the next attempt must wait.
func (p Policy) Delay(failures int) time.Duration {
	if failures < p.Free {
		return 0
	}
	n := failures - p.Free + 1
	step := p.Step
	if step <= 0 {
		step = time.Second
	}
	if n > maxDelaySteps || step > p.MaxDelay>>n {
		return p.MaxDelay
	}
	d := step << n
	if d > p.MaxDelay {
		return p.MaxDelay
	}
	return d
}

// Delays lists Delay(0) … Delay(k) up to the first that reaches MaxDelay;
// Delay of any larger count is the last. Stores build their statements
// from it.
func (p Policy) Delays() []time.Duration {
	var out []time.Duration
	for c := 0; ; c++ {
		d := p.Delay(c)
		out = append(out, d)
		if d >= p.MaxDelay || c > p.Free+maxDelaySteps {
			return out
		}
	}
}

// FailureStore keeps the counters of the failure budgets. With the
// database's implementation (store/sqlstore) every process on one database
// shares them, so a limit holds across replicas.
type FailureStore interface {
	// TakeAttempt counts one attempt for keyHash at now, unless the key
	// must still wait; then it counts nothing and returns the wait. count
	// is the number of attempts counted, this one included.
	TakeAttempt(ctx context.Context, keyHash string, p Policy, now time.Time) (count int, wait time.Duration, err error)
	// RefundAttempt takes one counted attempt back.
	RefundAttempt(ctx context.Context, keyHash string) error
	// ClearFailures forgets the key's failures.
	ClearFailures(ctx context.Context, keyHash string) error
	// PurgeFailures removes counters whose last attempt is before before.
	PurgeFailures(ctx context.Context, before time.Time) (int64, error)
}

// KeyHash is the stored form of a budget's key (keys name accounts,
// devices and addresses: only their hash is kept).
func KeyHash(p Policy, key string) string {
	sum := sha256.Sum256([]byte("commonsid/limits\x00" + p.Name + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// Attempt is one counted attempt against a budget.
type Attempt struct {
	l    *Limits
	hash string
	// Count is the number of attempts counted in the budget, this one
	// included; 0 when limiting is off.
	Count int
}

// Take counts an attempt against the budget p of key. When the key must
// wait, it counts nothing and returns a nil Attempt and the wait. With
// limiting off every attempt is allowed. Errors are the store's: the
// caller answers "unavailable", never "allowed".
func (l *Limits) Take(ctx context.Context, p Policy, key string) (*Attempt, time.Duration, error) {
	if l.Off() {
		return &Attempt{}, 0, nil
	}
	p.Free = l.n(p.Free)
	h := KeyHash(p, key)
	now := l.now()
	l.maybePurge(ctx, now)
	n, wait, err := l.failures().TakeAttempt(ctx, h, p, now)
	if err != nil {
		return nil, 0, err
	}
	if wait > 0 {
		metrics.RateLimited("failures:" + p.Name)
		return nil, wait, nil
	}
	return &Attempt{l: l, hash: h, Count: n}, 0, nil
}

// Refund takes the attempt back: it reached no verdict (the store failed),
// or it is not one the budget counts (a right password). Safe on nil.
func (a *Attempt) Refund(ctx context.Context) {
	if a == nil || a.l == nil {
		return
	}
	a.l.failures().RefundAttempt(ctx, a.hash)
}

// Clear forgets every failure of the attempt's budget (the owner proved
// themselves). Safe on nil.
func (a *Attempt) Clear(ctx context.Context) {
	if a == nil || a.l == nil {
		return
	}
	a.l.failures().ClearFailures(ctx, a.hash)
}

// Clear forgets the failures of key in the budget p (the owner proved
// themselves in another way). A store failure is returned; nothing with
// limiting off.
func (l *Limits) Clear(ctx context.Context, p Policy, key string) error {
	if l.Off() {
		return nil
	}
	return l.failures().ClearFailures(ctx, KeyHash(p, key))
}

// Started reports whether this failed attempt is the one that starts the
// budget's delay (for the notice of a lockout, sent once).
func (a *Attempt) Started(p Policy) bool {
	return a != nil && a.l != nil && a.Count == a.l.n(p.Free)
}

func (l *Limits) now() time.Time {
	if l.Now != nil {
		return l.Now().UTC()
	}
	return time.Now().UTC()
}

func (l *Limits) failures() FailureStore {
	if l.Failures != nil {
		return l.Failures
	}
	l.memOnce.Do(func() { l.mem = &MemoryFailures{} })
	return l.mem
}

// purgeEvery is how often a process removes old counters.
const purgeEvery = 10 * time.Minute

// keepFailures is how long a counter can matter: the longest delay plus
// the window after it.
const keepFailures = time.Hour

func (l *Limits) maybePurge(ctx context.Context, now time.Time) {
	l.purgeMu.Lock()
	due := now.Sub(l.lastPurge) >= purgeEvery
	if due {
		l.lastPurge = now
	}
	l.purgeMu.Unlock()
	if due {
		l.failures().PurgeFailures(ctx, now.Add(-keepFailures))
	}
}

// MemoryFailures is a FailureStore in one process's memory (tests, and a
// Limits without a database).
type MemoryFailures struct {
	mu   sync.Mutex
	rows map[string]*memRow
}

type memRow struct {
	start, last time.Time
	count       int
}

// TakeAttempt implements FailureStore.
func (m *MemoryFailures) TakeAttempt(_ context.Context, h string, p Policy, now time.Time) (int, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[string]*memRow{}
	}
	r := m.rows[h]
	if r == nil {
		m.rows[h] = &memRow{start: now, last: now, count: 1}
		return 1, 0, nil
	}
	d := p.Delay(r.count)
	if wait := r.last.Add(d).Sub(now); wait > 0 {
		return 0, wait, nil
	}
	if !now.Before(r.last.Add(d + p.Window)) {
		r.count, r.start = 0, now
	}
	r.count++
	r.last = now
	return r.count, 0, nil
}

// RefundAttempt implements FailureStore.
func (m *MemoryFailures) RefundAttempt(_ context.Context, h string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rows[h]; r != nil && r.count > 0 {
		r.count--
	}
	return nil
}

// ClearFailures implements FailureStore.
func (m *MemoryFailures) ClearFailures(_ context.Context, h string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, h)
	return nil
}

// PurgeFailures implements FailureStore.
func (m *MemoryFailures) PurgeFailures(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for h, r := range m.rows {
		if r.last.Before(before) {
			delete(m.rows, h)
			n++
		}
	}
	return n, nil
}
