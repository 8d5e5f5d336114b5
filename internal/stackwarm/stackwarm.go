// Package stackwarm grows a new goroutine's stack while it is still
// shallow.
//
// A goroutine starts on a small stack and the runtime doubles it, copying
// every frame, each time a call would overflow it. The copy walks all the
// frames on the stack, so growing a deep stack (a TLS record read, a CBOR
// decode) several times costs far more than growing a shallow one once.
// The project's on-demand goroutines (a link's reader pump, a session's
// control reader and hand-off, its sender and a link's writer) start per
// burst of traffic and run such deep paths at once: in a profile of the
// 1x1 fan-out they spent 11 % of the server's CPU in runtime.newstack
// (docs/benchmarks.md, "Stack growth of on-demand goroutines"). Calling
// Grow first makes that a single growth of a one-frame stack.
//
// The stack goes back to the runtime when the goroutine ends, so an idle
// session, which holds none of these goroutines (D27, D34), pays nothing.
package stackwarm

// Size is the stack Grow leaves a goroutine with: 16 KiB, chosen so that
// the deep on-demand paths (a polled TLS link's read through the session's
// decode and the gateway's handler) mostly run without a further growth:
// in the 1x1 live profile runtime.newstack fell from 11 % to 3.6 % of the
// server's samples.
const Size = 16 << 10

// frame is the stack frame Grow's callee takes: big enough that the
// runtime's growth lands on Size in one step, small enough not to reach
// the next size up.
const frame = Size/2 + Size/4

// Grow makes sure the calling goroutine's stack is at least Size bytes.
// Call it first thing in a goroutine that is about to run a deep path.
func Grow() { grow() }

//go:noinline
func grow() {
	var b [frame]byte
	touch(b[:])
}

//go:noinline
func touch(b []byte) {
	b[0] = 1
}
