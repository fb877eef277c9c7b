package web

import (
	"sync"
	"time"

	"github.com/onecommons/commonsid/identity"
)

// pendingKits keeps, for an hour, the new recovery kit and versionTime of
// each kit rotation whose witnesses fell short of the threshold, by SCID,
// previous versionId and old key, so that the person's retry signs the very
// same entry: witnesses that signed the first attempt see it again, not a
// fork they would refuse for good. The new kit is shown only once the
// rotation is witnessed and stored; it is then forgotten here.
var pendingKits = &kitCache{m: map[string]pendingKit{}}

type pendingKit struct {
	kit  *identity.RecoveryKit
	at   time.Time
	made time.Time
}

type kitCache struct {
	mu sync.Mutex
	m  map[string]pendingKit
}

const (
	pendingKitTTL = time.Hour
	maxPendingKit = 1000
)

// get returns the kit and entry time of the pending rotation k, or makes
// them (a new kit; at).
func (c *kitCache) get(k string, now, at time.Time) (*identity.RecoveryKit, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[k]; ok && now.Sub(p.made) < pendingKitTTL {
		return p.kit, p.at, nil
	}
	kit, err := identity.NewRecoveryKit()
	if err != nil {
		return nil, time.Time{}, err
	}
	for x, p := range c.m {
		if now.Sub(p.made) >= pendingKitTTL || len(c.m) >= maxPendingKit {
			delete(c.m, x)
		}
	}
	c.m[k] = pendingKit{kit: kit, at: at, made: now}
	return kit, at, nil
}

func (c *kitCache) done(k string) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}
