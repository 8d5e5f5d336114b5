package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/security/devicekey"
)

// countingKeys is a KeySource that counts lookups; fail makes it fail
// transiently.
type countingKeys struct {
	devs  map[devicekey.ID]devicekey.Device
	calls int
	fail  bool
}

func (k *countingKeys) Lookup(_ context.Context, id devicekey.ID) (devicekey.Device, error) {
	k.calls++
	if k.fail {
		return devicekey.Device{}, errors.New("unavailable")
	}
	d, ok := k.devs[id]
	if !ok {
		return devicekey.Device{}, fmt.Errorf("%w: %s", devicekey.ErrNotFound, id)
	}
	return d, nil
}

func TestKeyCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	src := &countingKeys{devs: map[devicekey.ID]devicekey.Device{}}
	var ids []devicekey.ID
	for i := range 3 {
		id := devicekey.ID{byte(i + 1)}
		src.devs[id] = devicekey.Device{ID: id, Owner: fmt.Sprint("u", i)}
		ids = append(ids, id)
	}
	o := VerifyOptions{KeyCacheSize: 2}
	o.setDefaults()
	k := newKeyCache(src, &o, func() time.Time { return now })
	ctx := context.Background()
	lookup := func(id devicekey.ID) error {
		_, err := k.Lookup(ctx, id)
		return err
	}
	steps := []struct {
		name  string
		do    func()
		id    devicekey.ID
		calls int  // source calls after the step
		miss  bool // not found
	}{
		{"first fetch", nil, ids[0], 1, false},
		{"cached", nil, ids[0], 1, false},
		{"second key", nil, ids[1], 2, false},
		{"third evicts the least recent", nil, ids[2], 3, false},
		{"evicted one is fetched again", nil, ids[0], 4, false},
		{"unknown device", nil, devicekey.ID{9}, 5, true},
		{"unknown device cached", nil, devicekey.ID{9}, 5, true},
		{"miss expires sooner", func() { now = now.Add(DefaultKeyMissTTL + time.Second) }, devicekey.ID{9}, 6, true},
		{"key expires", func() { now = now.Add(DefaultKeyCacheTTL) }, devicekey.ID{9}, 7, true},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		err := lookup(st.id)
		if errors.Is(err, devicekey.ErrNotFound) != st.miss || (err != nil && !st.miss) {
			t.Fatalf("%s: %v", st.name, err)
		}
		if src.calls != st.calls {
			t.Fatalf("%s: %d source calls, want %d", st.name, src.calls, st.calls)
		}
		if k.len() > 2 {
			t.Fatalf("%s: %d entries, cap 2", st.name, k.len())
		}
	}
	// Transient failures are not cached.
	src.fail = true
	now = now.Add(DefaultKeyCacheTTL + time.Second)
	for range 2 {
		if err := lookup(ids[1]); err == nil || errors.Is(err, devicekey.ErrNotFound) {
			t.Fatalf("transient failure: %v", err)
		}
	}
	if src.calls != 9 {
		t.Fatalf("%d source calls, want 9: a failure must not be cached", src.calls)
	}
}

func TestVerifyOptionsValidate(t *testing.T) {
	for _, o := range []VerifyOptions{{KeyCacheSize: -1}, {KeyCacheTTL: -1}, {KeyMissTTL: -1}, {KeyFetchTimeout: -1}} {
		if err := o.validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
