package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/wire"
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

// TestResign checks that a signed envelope sent again gets a fresh nonce
// and timestamp under the same id, still verifies, and leaves the original
// untouched; unsigned envelopes and clients without a key pass through.
func TestResign(t *testing.T) {
	k, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_700_000_000, 0)
	o := Options{SigningKey: k, Now: func() time.Time { return clock }}
	s, err := newSignatures(&o)
	if err != nil {
		t.Fatal(err)
	}
	env := &wire.Envelope{ID: []byte("id-1"), Route: wire.Route{Kind: wire.RouteChannel, Name: "room"}, Body: []byte("hi")}
	if err := s.sign(env); err != nil {
		t.Fatal(err)
	}
	orig := *env
	clock = clock.Add(10 * time.Minute) // past the server's skew window
	again, err := s.resign(env)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case again == env:
		t.Fatal("resign returned the same envelope")
	case !bytes.Equal(again.ID, orig.ID):
		t.Errorf("id changed: %q -> %q", orig.ID, again.ID)
	case bytes.Equal(again.Nonce, orig.Nonce):
		t.Error("nonce reused")
	case again.Timestamp != uint64(clock.UnixMilli()):
		t.Errorf("timestamp %d, want %d", again.Timestamp, clock.UnixMilli())
	case !bytes.Equal(env.Nonce, orig.Nonce) || env.Timestamp != orig.Timestamp || !bytes.Equal(env.Signature, orig.Signature):
		t.Error("original envelope modified")
	}
	if err := msgsig.Verify(again, k.Public(), clock); err != nil {
		t.Errorf("re-signed envelope does not verify: %v", err)
	}
	plain := &wire.Envelope{ID: []byte("id-2"), Body: []byte("x")}
	if got, err := s.resign(plain); err != nil || got != plain {
		t.Errorf("unsigned envelope: got %p, %v; want the same envelope", got, err)
	}
	var none *signatures
	if got, err := none.resign(again); err != nil || got != again {
		t.Errorf("no signer: got %p, %v; want the same envelope", got, err)
	}
}
