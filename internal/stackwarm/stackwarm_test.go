package stackwarm

import (
	"runtime"
	"sync"
	"testing"
)

// stackInUse returns the bytes of goroutine stacks after n goroutines
// that ran f have parked.
func stackInUse(t *testing.T, n int, f func()) uint64 {
	t.Helper()
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	for range n {
		go func() {
			f()
			ready.Done()
			release.Wait()
		}()
	}
	ready.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	release.Done()
	return ms.StackInuse
}

// TestGrowReachesSize checks that Grow leaves each goroutine with a stack
// of Size bytes: about n*Size more stack in use than goroutines that do
// nothing, and not the next size up.
func TestGrowReachesSize(t *testing.T) {
	const n = 200
	base := stackInUse(t, n, func() {})
	grown := stackInUse(t, n, Grow)
	per := (int64(grown) - int64(base)) / n
	t.Logf("stack per goroutine above an empty one: %d bytes", per)
	if per < Size*3/4 || per > Size*3/2 {
		t.Fatalf("Grow left %d bytes more stack per goroutine, want about %d", per, Size)
	}
}

func BenchmarkGoroutineDeepPath(b *testing.B) {
	for _, warm := range []bool{false, true} {
		name := "cold"
		if warm {
			name = "warm"
		}
		b.Run(name, func(b *testing.B) {
			done := make(chan struct{})
			for b.Loop() {
				go func() {
					if warm {
						Grow()
					}
					deep(24)
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}

// deep recurses n frames of about 400 bytes each, as a TLS read under a
// frame decoder does.
//
//go:noinline
func deep(n int) int {
	var pad [48]int64
	pad[n%48] = int64(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%48])
}
