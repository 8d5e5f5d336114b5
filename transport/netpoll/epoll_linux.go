//go:build linux && !jspnoepoll

package netpoll

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// impl is the epoll poller: one epoll instance, Config.Waiters goroutines
// in epoll_wait, and a pipe whose read end, registered as number 0, wakes
// them all when the poller stops.
type impl struct {
	epfd   int
	wakeR  int
	wakeW  int
	wg     sync.WaitGroup
	closed sync.Once
}

// armEvents is level-triggered and one-shot: one event per arming, and
// input already waiting at arming fires at once (Arm's contract).
const armEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func setID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func getID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func (m *impl) start(p *Poller) error {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("pipe2: %w", err)
	}
	m.epfd, m.wakeR, m.wakeW = fd, pipe[0], pipe[1]
	// Level-triggered without ONESHOT: once written, every waiter sees it.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setID(&ev, 0)
	if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, m.wakeR, &ev); err != nil {
		m.closeFDs()
		return fmt.Errorf("epoll_ctl wake pipe: %w", err)
	}
	for range p.cfg.Waiters {
		m.wg.Add(1)
		go m.wait(p)
	}
	return nil
}

func (m *impl) closeFDs() {
	syscall.Close(m.epfd)
	syscall.Close(m.wakeR)
	syscall.Close(m.wakeW)
}

// wait is one waiter goroutine; it ends when the wake pipe is readable.
func (m *impl) wait(p *Poller) {
	defer m.wg.Done()
	events := make([]syscall.EpollEvent, p.cfg.MaxEvents)
	for {
		n, err := syscall.EpollWait(m.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Only a programming error (a bad descriptor) gets here.
			panic(fmt.Sprintf("netpoll: epoll_wait: %v", err))
		}
		for i := range events[:n] {
			id := getID(&events[i])
			if id == 0 {
				return
			}
			p.dispatch(id)
		}
	}
}

func (m *impl) ctl(r *Registration, op int) error {
	// The function Control runs comes with a pooled state (as in
	// ReadNonblock): re-arming after every burst allocates nothing.
	c := ctls.Get().(*epollCtl)
	c.epfd, c.op, c.id = m.epfd, op, r.id
	err := r.rc.Control(c.fn)
	cerr := c.err
	c.err = nil
	ctls.Put(c)
	if err != nil {
		return err
	}
	return cerr
}

// epollCtl is the state of one epoll_ctl call, pooled with the function
// RawConn.Control runs for it.
type epollCtl struct {
	epfd, op int
	id       uint64
	ev       syscall.EpollEvent
	err      error
	fn       func(fd uintptr)
}

var ctls = sync.Pool{New: func() any {
	c := &epollCtl{}
	c.fn = func(fd uintptr) {
		c.ev = syscall.EpollEvent{Events: armEvents}
		setID(&c.ev, c.id)
		c.err = syscall.EpollCtl(c.epfd, c.op, int(fd), &c.ev)
	}
	return c
}}

func (m *impl) add(r *Registration) error { return m.ctl(r, syscall.EPOLL_CTL_ADD) }

func (m *impl) arm(r *Registration) error { return m.ctl(r, syscall.EPOLL_CTL_MOD) }

// del removes the socket. It may already be closed (the kernel then
// dropped it from the set itself), so errors mean nothing here.
func (m *impl) del(r *Registration) { _ = m.ctl(r, syscall.EPOLL_CTL_DEL) }

// stop wakes the waiters, waits for them and closes the descriptors.
func (m *impl) stop() {
	m.closed.Do(func() {
		syscall.Write(m.wakeW, []byte{1})
		m.wg.Wait()
		m.closeFDs()
	})
}

// IdleWithoutGoroutine reports whether an armed registration waits
// without a goroutine of its own (true with epoll).
const IdleWithoutGoroutine = true
