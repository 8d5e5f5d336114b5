// Package jsperr defines JSP error codes and the typed protocol error that
// carries them (JSP §10). The codes are generated from spec/errors.json, the
// one registry shared by every SDK.
//
// A protocol error compares equal under errors.Is to another *Error with the
// same code, so callers can branch with
//
//	if errors.Is(err, jsperr.New(jsperr.RateLimited, "")) { ... }
//
// or, more simply, with [CodeOf].
package jsperr

//go:generate go run ../internal/errgen -in ../spec/errors.json -out codes_gen.go -spec ../spec/JSP.md

import (
	"errors"
	"fmt"
	"time"
)

// Code is a registered JSP error code, sent on the wire as a varint.
type Code uint64

type info struct {
	name  string
	scope string
	retry bool
}

// String returns the registry name, e.g. "MALFORMED_FRAME".
func (c Code) String() string {
	if i, ok := registry[c]; ok {
		return i.name
	}
	return fmt.Sprintf("UNKNOWN_ERROR(0x%x)", uint64(c))
}

// Known reports whether c is in the registry.
func (c Code) Known() bool { _, ok := registry[c]; return ok }

// Retryable reports whether the registry marks c as worth retrying.
func (c Code) Retryable() bool { return registry[c].retry }

// Scope is what an error of this code closes: "connection", "stream" or
// "message".
func (c Code) Scope() string { return registry[c].scope }

// Error is a protocol error with its wire code. Remote is true when the error
// was received from the peer rather than detected locally.
type Error struct {
	Code       Code
	Reason     string
	Remote     bool
	RetryAfter time.Duration
	// Supported lists the peer's versions for UNSUPPORTED_VERSION.
	Supported []uint32
	cause     error
}

// New returns a local error with the given code and reason.
func New(code Code, reason string) *Error { return &Error{Code: code, Reason: reason} }

// Newf is New with a formatted reason.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Wrap returns a local error with the given code whose cause is err.
func Wrap(code Code, err error) *Error {
	return &Error{Code: code, Reason: err.Error(), cause: err}
}

// Error implements error.
func (e *Error) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	if e.Reason == "" {
		return fmt.Sprintf("jsp %s error %s", side, e.Code)
	}
	return fmt.Sprintf("jsp %s error %s: %s", side, e.Code, e.Reason)
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is matches another *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of the first *Error in err's chain, INTERNAL if
// there is none, and NO_ERROR for nil.
func CodeOf(err error) Code {
	if err == nil {
		return NoError
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
