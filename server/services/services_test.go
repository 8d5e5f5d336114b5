package services

import (
	"context"
	"slices"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

type cmdOnly struct{}

func (cmdOnly) HandleCommand(context.Context, *Caller, *wire.Envelope) ([]byte, error) {
	return nil, nil
}

type withStream struct{ cmdOnly }

func (withStream) HandleStream(context.Context, *Caller, Stream) error { return nil }

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name    string
		svc     Service
		command string
		labels  []string
		ok      bool
	}{
		{"command", cmdOnly{}, "a", nil, true},
		{"duplicate command", cmdOnly{}, "a", nil, false},
		{"labels without HandleStream", cmdOnly{}, "b", []string{"x"}, false},
		{"command and labels", withStream{}, "c", []string{"c.put", "c.get"}, true},
		{"duplicate label", withStream{}, "d", []string{"c.put"}, false},
		{"label twice in one call", withStream{}, "e", []string{"e", "e"}, false},
		{"empty label", withStream{}, "f", []string{""}, false},
		{"labels only", withStream{}, "", []string{"g"}, true},
		{"nil service", nil, "h", nil, false},
	}
	for _, tt := range tests {
		err := r.Register(tt.svc, tt.command, tt.labels...)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Register = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if got := r.Commands(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Commands = %v", got)
	}
	if got := r.Labels(); !slices.Equal(got, []string{"c.get", "c.put", "g"}) {
		t.Errorf("Labels = %v", got)
	}
	if _, ok := r.Command("b"); ok {
		t.Error("a failed registration left its command behind")
	}
	if _, ok := r.Stream("e"); ok {
		t.Error("a failed registration left its label behind")
	}
	if s, ok := r.Stream("c.put"); !ok || s == nil {
		t.Error("label c.put not found")
	}
}

func TestCallerNotify(t *testing.T) {
	var got []*wire.Envelope
	c := NewCaller(Identity{SessionID: "ab"}, func(env *wire.Envelope) error { got = append(got, env); return nil })
	env := &wire.Envelope{Body: []byte("x")}
	if err := c.Notify(env); err != nil || len(got) != 1 || got[0] != env {
		t.Fatalf("Notify = %v, got %v", err, got)
	}
	if err := NewCaller(Identity{}, nil).Notify(env); jsperr.CodeOf(err) != jsperr.NotFound {
		t.Fatalf("Notify without a sink = %v", err)
	}
}
