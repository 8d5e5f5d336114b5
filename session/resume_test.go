package session

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// acceptWith runs Dial against Accept with opts on a fresh pair and returns
// both results.
func acceptWith(t *testing.T, opts ServerOptions, info ClientInfo) (cli, srv *Session, cerr, serr error) {
	t.Helper()
	cc, sc := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Accept(ctx, sc, Config{Logger: quietLogger()}, opts)
		ch <- res{s, err}
	}()
	cli, cerr = Dial(ctx, cc, info, Config{Logger: quietLogger()})
	r := <-ch
	t.Cleanup(func() {
		if cli != nil {
			cli.Close()
		}
		if r.s != nil {
			r.s.Close()
		}
	})
	return cli, r.s, cerr, r.err
}

func TestResumeHandshake(t *testing.T) {
	prev := bytes.Repeat([]byte{7}, 16)
	tok := bytes.Repeat([]byte{9}, ResumeTokenLen)
	hook := func(_ context.Context, r *wire.Resume, _ Identity) (any, error) {
		if !bytes.Equal(r.SessionID, prev) || !bytes.Equal(r.Token, tok) {
			return nil, jsperr.New(jsperr.SessionNotFound, "no such session")
		}
		return "state", nil
	}
	tests := []struct {
		name        string
		opts        ServerOptions
		resume      *wire.Resume
		wantResumed bool
		wantCode    jsperr.Code // refusal; NoError = accepted
		wantToken   bool
	}{
		{"fresh session gets a token", ServerOptions{Resume: hook}, nil, false, jsperr.NoError, true},
		{"valid resume", ServerOptions{Resume: hook}, &wire.Resume{SessionID: prev, Token: tok}, true, jsperr.NoError, true},
		{"wrong token", ServerOptions{Resume: hook}, &wire.Resume{SessionID: prev, Token: []byte{1}}, false, jsperr.SessionNotFound, false},
		{"unknown session", ServerOptions{Resume: hook}, &wire.Resume{SessionID: []byte{1}, Token: tok}, false, jsperr.SessionNotFound, false},
		{"hook without code", ServerOptions{Resume: func(context.Context, *wire.Resume, Identity) (any, error) {
			return nil, errors.New("store down")
		}}, &wire.Resume{SessionID: prev, Token: tok}, false, jsperr.SessionNotFound, false},
		{"resumption off", ServerOptions{}, &wire.Resume{SessionID: prev, Token: tok}, false, jsperr.NoError, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, srv, cerr, serr := acceptWith(t, tt.opts, ClientInfo{Resume: tt.resume})
			if tt.wantCode != jsperr.NoError {
				if jsperr.CodeOf(cerr) != tt.wantCode || jsperr.CodeOf(serr) != tt.wantCode {
					t.Fatalf("client err %v, server err %v; want %s", cerr, serr, tt.wantCode)
				}
				return
			}
			if cerr != nil || serr != nil {
				t.Fatalf("client err %v, server err %v", cerr, serr)
			}
			if cli.Resumed() != tt.wantResumed || srv.Resumed() != tt.wantResumed {
				t.Fatalf("resumed client %v server %v, want %v", cli.Resumed(), srv.Resumed(), tt.wantResumed)
			}
			if tt.wantResumed {
				if !bytes.Equal(cli.ID(), prev) || srv.ResumeState() != "state" {
					t.Fatalf("resumed id %x state %v", cli.ID(), srv.ResumeState())
				}
			} else if bytes.Equal(cli.ID(), prev) || srv.ResumeState() != nil {
				t.Fatalf("new session kept id %x or state %v", cli.ID(), srv.ResumeState())
			}
			gotToken := len(cli.ResumeToken()) == ResumeTokenLen
			if gotToken != tt.wantToken || !bytes.Equal(cli.ResumeToken(), srv.ResumeToken()) {
				t.Fatalf("token %x (server %x), want one: %v", cli.ResumeToken(), srv.ResumeToken(), tt.wantToken)
			}
			if tt.wantToken && bytes.Equal(cli.ResumeToken(), tok) {
				t.Fatal("resume token not rotated")
			}
		})
	}
}

// TestErrorWithoutRefMessageScope checks JSP §5.3: an ERROR without ref
// whose code is message-scoped (RECOVERY_IMPOSSIBLE with a channel) is
// delivered, and the session goes on.
func TestErrorWithoutRefMessageScope(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	if err := srv.Send(&wire.ErrorMessage{Code: jsperr.RecoveryImpossible, Channel: "room"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := cli.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	m, ok := in.Message.(*wire.ErrorMessage)
	if !ok || m.Channel != "room" || m.Code != jsperr.RecoveryImpossible {
		t.Fatalf("got %#v", in.Message)
	}
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("session ended after a message-scope ERROR: %v", err)
	}
}
