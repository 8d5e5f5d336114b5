package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

// fakeStore is what the fake backend returns; only Close is used.
type fakeStore struct{ storage.Store }

func TestOpenDispatchesByScheme(t *testing.T) {
	var gotDSN string
	var gotCfg storage.Config
	storage.Register("faketest", func(ctx context.Context, dsn string, cfg storage.Config) (storage.Store, error) {
		gotDSN, gotCfg = dsn, cfg
		return fakeStore{}, nil
	})
	if _, err := storage.Open(context.Background(), "FakeTest:whatever", storage.Config{}); err != nil {
		t.Fatal(err)
	}
	if gotDSN != "FakeTest:whatever" {
		t.Fatalf("backend got DSN %q", gotDSN)
	}
	// The backend receives a config with defaults applied.
	if gotCfg.DedupWindow != storage.DefaultDedupWindow || gotCfg.Now == nil || gotCfg.Logger == nil {
		t.Fatalf("backend got config without defaults: %+v", gotCfg)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("duplicate Register did not panic")
			}
		}()
		storage.Register("faketest", func(context.Context, string, storage.Config) (storage.Store, error) { return nil, nil })
	}()
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		cfg  storage.Config
		want error
	}{
		{"", storage.Config{}, storage.ErrInvalid},
		{"no-scheme", storage.Config{}, storage.ErrInvalid},
		{":memory:", storage.Config{}, storage.ErrInvalid},
		{"mysql://x", storage.Config{}, storage.ErrUnknownBackend},
		{"faketest2:x", storage.Config{DedupWindow: -time.Second}, storage.ErrUnknownBackend},
	} {
		_, err := storage.Open(context.Background(), tc.dsn, tc.cfg)
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%q) = %v, want %v", tc.dsn, err, tc.want)
		}
	}
	storage.Register("faketest3", func(context.Context, string, storage.Config) (storage.Store, error) {
		return nil, errors.New("boom")
	})
	_, err := storage.Open(context.Background(), "faketest3://u:secret@h/db", storage.Config{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("backend error leaked the password or was lost: %v", err)
	}
	_, err = storage.Open(context.Background(), "faketest3:x", storage.Config{MaxConns: -1})
	if !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("invalid config: %v", err)
	}
}

func TestRegisterRejectsBadScheme(t *testing.T) {
	for _, scheme := range []string{"", "a:b", "a/b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", scheme)
				}
			}()
			storage.Register(scheme, func(context.Context, string, storage.Config) (storage.Store, error) { return nil, nil })
		}()
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:pw@host/db", "postgres://u:xxxxx@host/db"},
		{"postgres://u:p@ss@host/db?x=1", "postgres://u:xxxxx@host/db?x=1"},
		{"postgres://u@host/db", "postgres://u@host/db"},
		{"postgres://host/db?user=a@b", "postgres://host/db?user=a@b"},
		{"sqlite:/var/lib/jsp.db", "sqlite:/var/lib/jsp.db"},
	} {
		if got := storage.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := storage.Config{}.WithDefaults()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"DedupWindow", c.DedupWindow, storage.DefaultDedupWindow},
		{"DefaultPageSize", c.DefaultPageSize, storage.DefaultPageSize},
		{"MaxPageSize", c.MaxPageSize, storage.DefaultMaxPageSize},
		{"MaxMessageBytes", c.MaxMessageBytes, storage.DefaultMaxMessageBytes},
		{"MaxValueBytes", c.MaxValueBytes, storage.DefaultMaxValueBytes},
		{"MaxAuditDetailBytes", c.MaxAuditDetailBytes, storage.DefaultMaxAuditDetailBytes},
		{"MaxConns", c.MaxConns, storage.DefaultMaxConns},
		{"BusyTimeout", c.BusyTimeout, storage.DefaultBusyTimeout},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Set fields are kept.
	if got := (storage.Config{DedupWindow: time.Minute}).WithDefaults().DedupWindow; got != time.Minute {
		t.Fatalf("DedupWindow overridden: %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []storage.Config{
		{DedupWindow: -1},
		{DefaultPageSize: -1},
		{DefaultPageSize: 20, MaxPageSize: 10},
		{MaxMessageBytes: -1},
		{MaxValueBytes: -1},
		{MaxAuditDetailBytes: -1},
		{MaxConns: -1},
		{BusyTimeout: -1},
	} {
		if err := c.WithDefaults().Validate(); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", c, err)
		}
	}
}

func TestPageLimit(t *testing.T) {
	c := storage.Config{DefaultPageSize: 10, MaxPageSize: 50}.WithDefaults()
	for _, tc := range []struct{ in, want int }{{0, 10}, {-5, 10}, {1, 1}, {50, 50}, {51, 50}, {1 << 40, 50}} {
		if got := c.PageLimit(tc.in); got != tc.want {
			t.Errorf("PageLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestChannelInfo(t *testing.T) {
	for _, tc := range []struct {
		info  storage.ChannelInfo
		after storage.Seq
		ok    bool
		count uint64
	}{
		{storage.ChannelInfo{Oldest: 1, Last: 0}, 0, true, 0},
		{storage.ChannelInfo{Oldest: 1, Last: 5}, 0, true, 5},
		{storage.ChannelInfo{Oldest: 4, Last: 5}, 2, false, 2},
		{storage.ChannelInfo{Oldest: 4, Last: 5}, 3, true, 2},
		{storage.ChannelInfo{Oldest: 6, Last: 5}, 5, true, 0},
		{storage.ChannelInfo{Oldest: 6, Last: 5}, 4, false, 0},
	} {
		if got := tc.info.CanRecover(tc.after); got != tc.ok {
			t.Errorf("%+v.CanRecover(%d) = %v, want %v", tc.info, tc.after, got, tc.ok)
		}
		if got := tc.info.Count(); got != tc.count {
			t.Errorf("%+v.Count() = %d, want %d", tc.info, got, tc.count)
		}
	}
}

func TestSessionOpen(t *testing.T) {
	if !(storage.Session{}).Open() || (storage.Session{ClosedAt: time.Unix(1, 0)}).Open() {
		t.Fatal("Session.Open wrong")
	}
}
