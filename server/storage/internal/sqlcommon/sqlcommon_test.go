package sqlcommon

import (
	"bytes"
	"errors"
	"maps"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := LoadMigrations(fstest.MapFS{
		"m/0002_b.sql":  file("B"),
		"m/0001_a.sql":  file("A"),
		"m/README.txt":  file("ignored"),
		"m/0003_c.sql":  file("C"),
		"other/9_x.sql": file("X"),
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Name != "0001_a.sql" || ms[2].SQL != "C" || ms[1].Version != 2 {
		t.Fatalf("loaded %+v", ms)
	}
	if ms[0].Checksum == ms[1].Checksum || len(ms[0].Checksum) != 64 {
		t.Fatalf("checksums %q %q", ms[0].Checksum, ms[1].Checksum)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")},
		"no start":  {"m/0002_b.sql": file("B")},
		"bad name":  {"m/0001_a.sql": file("A"), "m/two.sql": file("B")},
		"zero":      {"m/0000_a.sql": file("A")},
		"duplicate": {"m/0001_a.sql": file("A"), "m/1_b.sql": file("B")},
		"empty":     {"m/x.txt": file("")},
		"missing":   {},
	} {
		if _, err := LoadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: LoadMigrations succeeded", name)
		}
	}
}

func TestPending(t *testing.T) {
	known := []Migration{{Version: 1, Checksum: "a"}, {Version: 2, Checksum: "b"}, {Version: 3, Checksum: "c"}}
	for _, tc := range []struct {
		name    string
		applied []Applied
		pending int
		err     error
	}{
		{"fresh", nil, 3, nil},
		{"partial", []Applied{{1, "a"}}, 2, nil},
		{"unordered", []Applied{{2, "b"}, {1, "a"}}, 1, nil},
		{"current", []Applied{{1, "a"}, {2, "b"}, {3, "c"}}, 0, nil},
		{"newer", []Applied{{1, "a"}, {2, "b"}, {3, "c"}, {4, "d"}}, 0, storage.ErrSchemaTooNew},
		{"edited", []Applied{{1, "a"}, {2, "x"}}, 0, storage.ErrSchemaMismatch},
		{"gap", []Applied{{1, "a"}, {3, "c"}}, 0, storage.ErrSchemaMismatch},
	} {
		got, err := Pending(tc.applied, known)
		if !errors.Is(err, tc.err) || (err == nil && len(got) != tc.pending) {
			t.Errorf("%s: %d pending, %v; want %d, %v", tc.name, len(got), err, tc.pending, tc.err)
		}
		if err == nil && tc.pending > 0 && got[0].Version != 4-tc.pending {
			t.Errorf("%s: first pending is %d", tc.name, got[0].Version)
		}
	}
}

func TestTime(t *testing.T) {
	in := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	got := Time(in)
	if got.Location() != time.UTC || got.Nanosecond() != 123456000 || !got.Equal(in.Truncate(time.Microsecond)) {
		t.Fatalf("Time(%v) = %v", in, got)
	}
	if !FromMicros(Micros(in)).Equal(got) {
		t.Fatal("micros round trip")
	}
	if Micros(time.Time{}) != 0 || !FromMicros(0).IsZero() {
		t.Fatal("zero time must map to 0 and back")
	}
	if !Expiry(in, 0).IsZero() || !Expiry(in, -time.Second).IsZero() || !Expiry(in, time.Second).Equal(got.Add(time.Second)) {
		t.Fatal("Expiry")
	}
}

func TestDigest(t *testing.T) {
	// Moving bytes between body and headers changes the digest.
	pairs := [][2]string{{"ab", "c"}, {"a", "bc"}, {"abc", ""}, {"", "abc"}}
	seen := map[string]bool{}
	for _, p := range pairs {
		d := string(Digest([]byte(p[0]), []byte(p[1])))
		if seen[d] {
			t.Fatalf("digest collision for %q", p)
		}
		seen[d] = true
	}
	if !bytes.Equal(Digest([]byte("x"), nil), Digest([]byte("x"), []byte{})) {
		t.Fatal("nil and empty headers differ")
	}
}

func TestHeaders(t *testing.T) {
	h := map[string]string{"b": "2", "a": "1", "ü": "\"quoted\""}
	enc, err := EncodeHeaders(h)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: equal maps encode equally (keys sorted).
	for range 10 {
		again, _ := EncodeHeaders(maps.Clone(h))
		if !bytes.Equal(enc, again) {
			t.Fatal("header encoding is not deterministic")
		}
	}
	dec, err := DecodeHeaders(enc)
	if err != nil || !maps.Equal(dec, h) {
		t.Fatalf("decode = %v, %v", dec, err)
	}
	if b, _ := EncodeHeaders(map[string]string{}); b != nil {
		t.Fatal("empty headers must encode to nil")
	}
	if m, _ := DecodeHeaders([]byte("{}")); m != nil {
		t.Fatal("empty object must decode to nil")
	}
	if _, err := DecodeHeaders([]byte("[")); err == nil {
		t.Fatal("bad stored headers decoded")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"x", true}, {"", false}, {string(make([]byte, storage.MaxNameLen)), false}, // NULs
		{string(bytes.Repeat([]byte("y"), storage.MaxNameLen)), true},
		{string(bytes.Repeat([]byte("y"), storage.MaxNameLen+1)), false},
		{"\xff", false}, {"a\x00b", false}, {"héllo", true},
	} {
		err := Name("name", tc.s)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, storage.ErrInvalid)) {
			t.Errorf("Name(%q) = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
	if err := OptionalName("name", ""); err != nil {
		t.Fatal(err)
	}
}
