//go:build race

package media

// raceEnabled reports whether the race detector is on: it slows the whole
// pipeline, QUIC's cryptography included, several-fold.
const raceEnabled = true
