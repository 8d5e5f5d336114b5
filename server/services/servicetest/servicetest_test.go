package servicetest

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestPipe(t *testing.T) {
	srv, cli := Pipe("l", map[string]string{"k": "v"})
	if srv.Label() != "l" || srv.Metadata()["k"] != "v" {
		t.Fatal("label or metadata lost")
	}
	go func() {
		_, _ = cli.Write([]byte("hello"))
		_ = cli.Close()
	}()
	got, err := io.ReadAll(srv)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	// The other direction still works after the client's half-close.
	go func() { _, _ = srv.Write([]byte("back")); _ = srv.Close() }()
	if got, err := io.ReadAll(cli); err != nil || string(got) != "back" {
		t.Fatalf("read back %q, %v", got, err)
	}
}

func TestCancelAndDeadlines(t *testing.T) {
	tests := []struct {
		name string
		run  func(srv, cli *Stream) error
		want func(error) bool
	}{
		{"cancel write", func(srv, cli *Stream) error {
			srv.CancelWrite(jsperr.NotFound)
			_, err := cli.Read(make([]byte, 1))
			return err
		}, func(err error) bool { return IsReset(err, jsperr.NotFound) }},
		{"cancel read", func(srv, cli *Stream) error {
			srv.CancelRead(jsperr.Cancelled)
			_, err := cli.Write([]byte("x"))
			return err
		}, func(err error) bool { return IsReset(err, jsperr.Cancelled) }},
		{"read deadline", func(srv, cli *Stream) error {
			_ = srv.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			_, err := srv.Read(make([]byte, 1))
			return err
		}, func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"write deadline", func(srv, cli *Stream) error {
			_ = srv.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
			_, err := srv.Write([]byte("nobody reads"))
			return err
		}, func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"cleared deadline", func(srv, cli *Stream) error {
			_ = srv.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			_ = srv.SetReadDeadline(time.Time{})
			go func() { time.Sleep(30 * time.Millisecond); _, _ = cli.Write([]byte("late")) }()
			_, err := srv.Read(make([]byte, 4))
			return err
		}, func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, cli := Pipe("l", nil)
			defer srv.Stop()
			defer cli.Stop()
			if err := tt.run(srv, cli); !tt.want(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
