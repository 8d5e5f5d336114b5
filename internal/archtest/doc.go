// Package archtest holds tests that enforce the project's layering and
// documentation rules; it has no code of its own.
package archtest
