package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// DefaultListPoll is how often the list files (--block-file, --allow-file)
// are checked for a new modification time or size.
const DefaultListPoll = ddos.DefaultListPoll

// listSink takes reloaded lists; *gateway.Gateway is one.
type listSink interface {
	SetLists(ddos.Lists) (closed int, err error)
}

// listFiles keeps the connection filter's CIDR lists in step with the
// files of --block-file and --allow-file: the prefixes of --block and
// --allow plus those read from the files. It reloads on SIGHUP and when a
// file's modification time or size changes (polled every poll; no file
// notification dependency). A file that does not parse keeps the lists in
// force, and the error names the file and the line.
type listFiles struct {
	blockFile, allowFile string
	block, allow         []netip.Prefix // from flags, always part of the lists
	poll                 time.Duration
	log                  *slog.Logger

	mu    sync.Mutex
	stamp map[string]fileStamp // guarded by mu; per file, as last loaded
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
}

func (lf *listFiles) enabled() bool { return lf.blockFile != "" || lf.allowFile != "" }

// load reads both files and returns the full lists. A missing file name
// contributes nothing.
func (lf *listFiles) load() (ddos.Lists, map[string]fileStamp, error) {
	stamps := map[string]fileStamp{}
	read := func(path string, base []netip.Prefix) ([]netip.Prefix, error) {
		out := slices.Clone(base)
		if path == "" {
			return out, nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("list file: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("list file: %w", err)
		}
		stamps[path] = fileStamp{st.ModTime(), st.Size()}
		ps, err := ddos.ParseList(f)
		if err != nil {
			return nil, fmt.Errorf("list file %s: %w", path, err)
		}
		return append(out, ps...), nil
	}
	block, err := read(lf.blockFile, lf.block)
	if err != nil {
		return ddos.Lists{}, nil, err
	}
	allow, err := read(lf.allowFile, lf.allow)
	if err != nil {
		return ddos.Lists{}, nil, err
	}
	return ddos.Lists{Block: block, Allow: allow}, stamps, nil
}

// initial loads the lists for the gateway's Config; an error here stops
// the server from starting.
func (lf *listFiles) initial() (ddos.Lists, error) {
	l, stamps, err := lf.load()
	if err != nil {
		return ddos.Lists{}, err
	}
	lf.mu.Lock()
	lf.stamp = stamps
	lf.mu.Unlock()
	return l, nil
}

// changed reports whether a file differs from the version last loaded (a
// file that cannot be read counts as changed, so its error is logged).
func (lf *listFiles) changed() bool {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	for _, p := range []string{lf.blockFile, lf.allowFile} {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return true
		}
		if s, ok := lf.stamp[p]; !ok || !s.mod.Equal(st.ModTime()) || s.size != st.Size() {
			return true
		}
	}
	return false
}

// reload loads the files and hands the lists to sink; on error the lists
// in force stay and the error is logged with the file and line.
func (lf *listFiles) reload(sink listSink, why string) error {
	l, stamps, err := lf.load()
	if err != nil {
		lf.mu.Lock()
		// Remember the broken version, so that polling logs it once
		// rather than every interval; SIGHUP retries it.
		for p, s := range stamps {
			lf.stamp[p] = s
		}
		for _, p := range []string{lf.blockFile, lf.allowFile} {
			if st, serr := os.Stat(p); p != "" && serr == nil {
				lf.stamp[p] = fileStamp{st.ModTime(), st.Size()}
			}
		}
		lf.mu.Unlock()
		lf.log.Error("list reload failed; the lists in force stay", "trigger", why, "err", err)
		return err
	}
	closed, err := sink.SetLists(l)
	if err != nil {
		lf.log.Error("list reload refused; the lists in force stay", "trigger", why, "err", err)
		return err
	}
	lf.mu.Lock()
	lf.stamp = stamps
	lf.mu.Unlock()
	lf.log.Info("lists reloaded", "trigger", why, "block", len(l.Block), "allow", len(l.Allow), "sessions_closed", closed)
	return nil
}

// watch reloads on SIGHUP (hup, nil for none) and when a file changes,
// until ctx ends.
func (lf *listFiles) watch(ctx context.Context, sink listSink, hup <-chan os.Signal) {
	poll := lf.poll
	if poll <= 0 {
		poll = DefaultListPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = lf.reload(sink, "SIGHUP")
		case <-t.C:
			if lf.changed() {
				_ = lf.reload(sink, "file changed")
			}
		}
	}
}

// startListWatch runs lf.watch for gw in a goroutine until the returned
// stop is called, which waits for it. Without list files it does
// nothing.
func startListWatch(lf *listFiles, sink listSink) (stop func()) {
	if lf == nil || !lf.enabled() {
		return func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		lf.watch(ctx, sink, hup)
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// listFiles loads --block-file and --allow-file into cfg's lists and sets
// up their reloading (f.node.lists). A file that does not parse stops the
// start.
func (f *serverFlags) listFiles(cfg *gateway.Config, log *slog.Logger) error {
	lf := &listFiles{blockFile: f.blockFile, allowFile: f.allowFile, block: cfg.DDoS.Block, allow: cfg.DDoS.Allow, poll: f.listPoll, log: log}
	if !lf.enabled() {
		return nil
	}
	if f.listPoll < 0 {
		return fmt.Errorf("--list-poll %v is negative", f.listPoll)
	}
	l, err := lf.initial()
	if err != nil {
		return err
	}
	cfg.DDoS.Block, cfg.DDoS.Allow = l.Block, l.Allow
	f.node.lists = lf
	return nil
}

// gatewaySink hands reloaded lists to the gateway once it is bound.
type gatewaySink func() *gateway.Gateway

func (s gatewaySink) SetLists(l ddos.Lists) (int, error) {
	gw := s()
	if gw == nil {
		return 0, errors.New("gateway not started")
	}
	return gw.SetLists(l)
}
