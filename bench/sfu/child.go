package main

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// child is a client process the orchestrator drives over its stdin and
// stdout. Its reader goroutine ends when the process closes stdout; wait
// joins it.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}

	mu     sync.Mutex
	stderr strings.Builder // guarded by mu; the first 64 KiB
}

// startChild starts bin with args.
func startChild(name, bin string, args []string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	c.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.stderr.Len() < 64<<10 {
			c.stderr.Write(p)
		}
		return len(p), nil
	})
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, filepath.Base(bin), err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		// Drain the rest so the process never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, out)
	}()
	return c, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// PID returns the process id.
func (c *child) PID() int { return c.cmd.Process.Pid }

// send writes one command line.
func (c *child) send(cmd string) error {
	_, err := io.WriteString(c.stdin, cmd+"\n")
	return err
}

// expect reads lines until one equal to want, collecting result lines on
// the way; it fails when the process ends or timeout passes first.
func (c *child) expect(want string, timeout time.Duration, results *[]string) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return fmt.Errorf("%s ended before %q: %s", c.name, want, c.errTail())
			}
			if l == want {
				return nil
			}
			if results != nil && strings.HasPrefix(l, "result ") {
				*results = append(*results, l)
			}
		case <-t.C:
			return fmt.Errorf("%s: no %q after %v: %s", c.name, want, timeout, c.errTail())
		}
	}
}

// finish closes stdin, collects the remaining result lines and waits for
// the process, killing it after timeout.
func (c *child) finish(timeout time.Duration, results *[]string) error {
	_ = c.stdin.Close()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				if err := c.cmd.Wait(); err != nil {
					return fmt.Errorf("%s: %w: %s", c.name, err, c.errTail())
				}
				return nil
			}
			if results != nil && strings.HasPrefix(l, "result ") {
				*results = append(*results, l)
			}
		case <-t.C:
			c.kill()
			return fmt.Errorf("%s did not end within %v: %s", c.name, timeout, c.errTail())
		}
	}
}

// kill ends the process and waits for it.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	for range c.lines {
	}
	_ = c.cmd.Wait()
}

func (c *child) errTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stderr.String()
	if len(s) > 1500 {
		s = s[len(s)-1500:]
	}
	return strings.TrimSpace(s)
}
