package storagetest

import (
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func kvKeys(es []storage.KVEntry) string {
	var ks []string
	for _, e := range es {
		ks = append(ks, e.Key+"="+string(e.Value))
	}
	return strings.Join(ks, ",")
}

var kvTests = []test{
	{"PutGet", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.KVGet(ctx, "presence", "alice")
		mustIs(t, err, storage.ErrNotFound)
		v1, err := s.KVPut(ctx, "presence", "alice", []byte("online"), 0)
		must(t, err)
		got, err := s.KVGet(ctx, "presence", "alice")
		must(t, err)
		if string(got.Value) != "online" || got.Version != v1 || got.Namespace != "presence" || got.Key != "alice" ||
			!got.ExpiresAt.IsZero() || !got.Updated.Equal(e.clock.Now()) {
			t.Fatalf("get = %+v", got)
		}
		v2, err := s.KVPut(ctx, "presence", "alice", []byte{}, 0)
		must(t, err)
		if v2 <= v1 {
			t.Fatalf("version %d after %d", v2, v1)
		}
		got, err = s.KVGet(ctx, "presence", "alice")
		must(t, err)
		if len(got.Value) != 0 || got.Version != v2 {
			t.Fatalf("get after overwrite = %+v", got)
		}
		// Namespaces are separate.
		_, err = s.KVGet(ctx, "other", "alice")
		mustIs(t, err, storage.ErrNotFound)
	}},
	{"CompareAndSet", func(t *testing.T, e *env) {
		s := e.open()
		v1, err := s.KVCompareAndSet(ctx, "n", "k", []byte("a"), 0, 0)
		must(t, err)
		_, err = s.KVCompareAndSet(ctx, "n", "k", []byte("b"), 0, 0)
		mustIs(t, err, storage.ErrConflict)
		_, err = s.KVCompareAndSet(ctx, "n", "k", []byte("b"), v1+1000, 0)
		mustIs(t, err, storage.ErrConflict)
		v2, err := s.KVCompareAndSet(ctx, "n", "k", []byte("b"), v1, 0)
		must(t, err)
		_, err = s.KVCompareAndSet(ctx, "n", "k", []byte("c"), v1, 0)
		mustIs(t, err, storage.ErrConflict)
		got, err := s.KVGet(ctx, "n", "k")
		must(t, err)
		equal(t, "value", string(got.Value), "b")
		_, err = s.KVCompareAndSet(ctx, "n", "missing", []byte("x"), v2, 0)
		mustIs(t, err, storage.ErrConflict)

		// Delete and re-create: the new version differs from every old
		// one, so a stale compare-and-set cannot succeed (no ABA).
		must(t, s.KVDelete(ctx, "n", "k"))
		must(t, s.KVDelete(ctx, "n", "k"))
		v3, err := s.KVCompareAndSet(ctx, "n", "k", []byte("d"), 0, 0)
		must(t, err)
		if v3 == v1 || v3 == v2 {
			t.Fatalf("re-created key reuses version %d", v3)
		}
		_, err = s.KVCompareAndSet(ctx, "n", "k", []byte("e"), v2, 0)
		mustIs(t, err, storage.ErrConflict)

		mustIs(t, s.KVCompareAndDelete(ctx, "n", "k", v2), storage.ErrConflict)
		must(t, s.KVCompareAndDelete(ctx, "n", "k", v3))
		_, err = s.KVGet(ctx, "n", "k")
		mustIs(t, err, storage.ErrNotFound)
		mustIs(t, s.KVCompareAndDelete(ctx, "n", "k", v3), storage.ErrConflict)
	}},
	{"Expiry", func(t *testing.T, e *env) {
		s := e.open()
		v1, err := s.KVPut(ctx, "n", "k", []byte("a"), time.Minute)
		must(t, err)
		got, err := s.KVGet(ctx, "n", "k")
		must(t, err)
		equal(t, "expires", got.ExpiresAt, e.clock.Now().Add(time.Minute))
		e.clock.Advance(time.Minute)
		_, err = s.KVGet(ctx, "n", "k")
		mustIs(t, err, storage.ErrNotFound)
		// An expired entry is absent for compare-and-set too.
		_, err = s.KVCompareAndSet(ctx, "n", "k", []byte("b"), v1, 0)
		mustIs(t, err, storage.ErrConflict)
		mustIs(t, s.KVCompareAndDelete(ctx, "n", "k", v1), storage.ErrConflict)
		v2, err := s.KVCompareAndSet(ctx, "n", "k", []byte("b"), 0, 0)
		must(t, err)
		got, err = s.KVGet(ctx, "n", "k")
		must(t, err)
		if got.Version != v2 || !got.ExpiresAt.IsZero() || string(got.Value) != "b" {
			t.Fatalf("re-created entry = %+v", got)
		}
	}},
	{"List", func(t *testing.T, e *env) {
		s := e.open()
		for _, k := range []string{"d", "a", "c", "b"} {
			_, err := s.KVPut(ctx, "n", k, []byte(k), 0)
			must(t, err)
		}
		_, err := s.KVPut(ctx, "n", "bb", []byte("bb"), time.Second)
		must(t, err)
		_, err = s.KVPut(ctx, "other", "a", []byte("x"), 0)
		must(t, err)
		got, err := s.KVList(ctx, "n", "", 3)
		must(t, err)
		equal(t, "page 1", kvKeys(got), "a=a,b=b,bb=bb")
		e.clock.Advance(time.Second)
		got, err = s.KVList(ctx, "n", "a", 10)
		must(t, err)
		equal(t, "after expiry", kvKeys(got), "b=b,c=c,d=d")
	}},
	{"Invalid", func(t *testing.T, e *env) {
		e.cfg.MaxValueBytes = 8
		s := e.open()
		_, err := s.KVPut(ctx, "n", "k", make([]byte, 9), 0)
		mustIs(t, err, storage.ErrTooLarge)
		_, err = s.KVPut(ctx, "n", "k", make([]byte, 8), 0)
		must(t, err)
		for _, nk := range [][2]string{{"", "k"}, {"n", ""}, {"n", strings.Repeat("k", storage.MaxNameLen+1)}} {
			_, err := s.KVPut(ctx, nk[0], nk[1], nil, 0)
			mustIs(t, err, storage.ErrInvalid)
			_, err = s.KVGet(ctx, nk[0], nk[1])
			mustIs(t, err, storage.ErrInvalid)
		}
	}},
}
