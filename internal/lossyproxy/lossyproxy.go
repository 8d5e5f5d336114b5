// Package lossyproxy is a UDP proxy for tests that puts a lossy network
// between a QUIC client and server on loopback, in real time.
//
//	client --UDP--> Proxy.Addr() --[up link]--> per-client socket --UDP--> target
//	client <--UDP-- Proxy.Addr() <-[down link]- per-client socket <--UDP-- target
//
// Each direction is an internal/simnet link (random and Gilbert-Elliott
// loss, delay, jitter, reordering, duplication, rate limit) driven by the
// wall clock instead of a virtual one: a packet read from a socket is put on
// the link at time.Now(), and a delivery goroutine per direction sleeps until
// the link's next arrival and writes what has arrived. Every random choice
// comes from the links' seeded generators, so a run's loss pattern depends
// only on the seeds and the order of packets, not on the machine; what the
// endpoints do with the loss still depends on real timing.
//
// QUIC retransmits lost stream data itself but never resends a DATAGRAM
// frame (RFC 9221), so traffic on the datagram path through this proxy sees
// the configured loss as it is, which is what media tests need.
//
// By default QUIC long-header packets (the handshake, RFC 9000 §17.2) pass
// without impairment, so that tests do not spend their time on handshake
// timeouts; Config.ImpairHandshake changes that.
//
// The Proxy owns its goroutines: one reader of the client-facing socket,
// one reader per client's upstream socket, and one delivery goroutine per
// direction. Close stops and joins them all.
package lossyproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/simnet"
)

// Defaults for zero Config fields.
const (
	// DefaultListen is the client-facing address.
	DefaultListen = "127.0.0.1:0"
	// DefaultMaxPacketSize is the read buffer size: larger than any QUIC
	// packet on loopback.
	DefaultMaxPacketSize = 2048
	// DefaultMaxClients caps the client addresses the proxy forwards for.
	DefaultMaxClients = 16
)

// Config configures a Proxy. Zero fields take their defaults; Target is
// required.
type Config struct {
	// Target is the server's UDP address.
	Target string
	// Listen is the client-facing address. Default DefaultListen. Use a
	// loopback address: the proxy is for tests on this machine.
	Listen string
	// Up is the client-to-server link, Down the server-to-client one.
	// Give them different seeds.
	Up, Down simnet.Config
	// ImpairHandshake applies the links to QUIC long-header packets too.
	ImpairHandshake bool
	// MaxPacketSize is the largest packet forwarded whole. Default
	// DefaultMaxPacketSize.
	MaxPacketSize int
	// MaxClients caps the distinct client addresses; packets from more
	// are dropped. Default DefaultMaxClients.
	MaxClients int
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
}

func (c *Config) validate() error {
	switch {
	case c.Target == "":
		return errors.New("lossyproxy: no target address")
	case c.MaxPacketSize < 1 || c.MaxClients < 1:
		return fmt.Errorf("lossyproxy: MaxPacketSize %d and MaxClients %d must be positive", c.MaxPacketSize, c.MaxClients)
	}
	return nil
}

// Stats counts what the proxy did, per direction.
type Stats struct {
	Up, Down         simnet.Stats // the links' counters
	UpBypassed       uint64       // long-header packets passed unimpaired, client to server
	DownBypassed     uint64       // and server to client
	DroppedClients   uint64       // packets from clients over MaxClients
	WriteErrors      uint64       // packets a socket refused
	OversizedPackets uint64       // packets that filled the read buffer (possibly cut)
}

// client is one client address and its upstream socket.
type client struct {
	id   uint32
	addr *net.UDPAddr
	up   *net.UDPConn // connected to the target
}

// path is one direction: a simnet link under a mutex and the goroutine
// that delivers from it.
type path struct {
	mu   sync.Mutex
	link *simnet.Link // guarded by mu
	wake chan struct{}
}

func (p *path) send(pkt []byte) {
	p.mu.Lock()
	p.link.Send(pkt, time.Now())
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Proxy is a running lossy UDP proxy.
type Proxy struct {
	cfg    Config
	conn   *net.UDPConn
	target *net.UDPAddr
	up     *path
	down   *path

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool               // guarded by mu
	clients map[string]*client // guarded by mu; by address
	byID    []*client          // guarded by mu; by id

	upBypassed, downBypassed, droppedClients, writeErrors, oversized atomic.Uint64
}

// New starts a proxy. The caller connects its client to Addr and must
// Close the proxy.
func New(cfg Config) (*Proxy, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	up, err := simnet.NewLink(cfg.Up)
	if err != nil {
		return nil, fmt.Errorf("lossyproxy: up link: %w", err)
	}
	down, err := simnet.NewLink(cfg.Down)
	if err != nil {
		return nil, fmt.Errorf("lossyproxy: down link: %w", err)
	}
	target, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("lossyproxy: target %q: %w", cfg.Target, err)
	}
	laddr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("lossyproxy: listen address %q: %w", cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("lossyproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg:     cfg,
		conn:    conn,
		target:  target,
		up:      &path{link: up, wake: make(chan struct{}, 1)},
		down:    &path{link: down, wake: make(chan struct{}, 1)},
		ctx:     ctx,
		cancel:  cancel,
		clients: map[string]*client{},
	}
	p.run(p.readClients)
	p.run(func() { p.deliver(p.up, p.writeUp) })
	p.run(func() { p.deliver(p.down, p.writeDown) })
	return p, nil
}

func (p *Proxy) run(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// Addr returns the client-facing address.
func (p *Proxy) Addr() net.Addr { return p.conn.LocalAddr() }

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.up.mu.Lock()
	up := p.up.link.Stats()
	p.up.mu.Unlock()
	p.down.mu.Lock()
	down := p.down.link.Stats()
	p.down.mu.Unlock()
	return Stats{
		Up:               up,
		Down:             down,
		UpBypassed:       p.upBypassed.Load(),
		DownBypassed:     p.downBypassed.Load(),
		DroppedClients:   p.droppedClients.Load(),
		WriteErrors:      p.writeErrors.Load(),
		OversizedPackets: p.oversized.Load(),
	}
}

// isLongHeader reports whether a QUIC packet has a long header (RFC 9000
// §17.2: the first bit is set).
func isLongHeader(pkt []byte) bool { return len(pkt) > 0 && pkt[0]&0x80 != 0 }

// tag prefixes a packet with the client id, so that one link per
// direction can carry every client's packets and still route them.
func tag(id uint32, pkt []byte) []byte {
	b := make([]byte, 4, 4+len(pkt))
	binary.BigEndian.PutUint32(b, id)
	return append(b, pkt...)
}

// readClients reads client packets and puts them on the up link.
func (p *Proxy) readClients() {
	buf := make([]byte, p.cfg.MaxPacketSize)
	for {
		n, addr, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		if n == len(buf) {
			p.oversized.Add(1)
		}
		c, err := p.client(addr)
		if err != nil {
			p.droppedClients.Add(1)
			continue
		}
		pkt := buf[:n]
		if !p.cfg.ImpairHandshake && isLongHeader(pkt) {
			p.upBypassed.Add(1)
			p.writeTo(c.up, nil, pkt)
			continue
		}
		p.up.send(tag(c.id, pkt))
	}
}

// client returns the client for addr, opening its upstream socket and
// starting its reader on first sight.
func (p *Proxy) client(addr *net.UDPAddr) (*client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if c, ok := p.clients[addr.String()]; ok {
		return c, nil
	}
	if len(p.byID) >= p.cfg.MaxClients {
		return nil, fmt.Errorf("lossyproxy: over %d clients", p.cfg.MaxClients)
	}
	up, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil, fmt.Errorf("lossyproxy: upstream socket for %v: %w", addr, err)
	}
	c := &client{id: uint32(len(p.byID)), addr: addr, up: up}
	p.clients[addr.String()] = c
	p.byID = append(p.byID, c)
	p.run(func() { p.readServer(c) })
	return c, nil
}

// readServer reads the server's packets for one client and puts them on
// the down link.
func (p *Proxy) readServer(c *client) {
	buf := make([]byte, p.cfg.MaxPacketSize)
	for {
		n, err := c.up.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			// ICMP port unreachable surfaces as a read error on a
			// connected UDP socket while the server is not up yet;
			// the socket itself is fine.
			continue
		}
		if n == len(buf) {
			p.oversized.Add(1)
		}
		pkt := buf[:n]
		if !p.cfg.ImpairHandshake && isLongHeader(pkt) {
			p.downBypassed.Add(1)
			p.writeTo(p.conn, c.addr, pkt)
			continue
		}
		p.down.send(tag(c.id, pkt))
	}
}

func (p *Proxy) writeTo(conn *net.UDPConn, addr *net.UDPAddr, pkt []byte) {
	var err error
	if addr == nil {
		_, err = conn.Write(pkt)
	} else {
		_, err = conn.WriteToUDP(pkt, addr)
	}
	if err != nil {
		p.writeErrors.Add(1)
	}
}

func (p *Proxy) lookup(tagged []byte) (*client, []byte) {
	id := binary.BigEndian.Uint32(tagged)
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(id) >= len(p.byID) {
		return nil, nil
	}
	return p.byID[id], tagged[4:]
}

func (p *Proxy) writeUp(tagged []byte) {
	if c, pkt := p.lookup(tagged); c != nil {
		p.writeTo(c.up, nil, pkt)
	}
}

func (p *Proxy) writeDown(tagged []byte) {
	if c, pkt := p.lookup(tagged); c != nil {
		p.writeTo(p.conn, c.addr, pkt)
	}
}

// idleWait is how long a delivery goroutine sleeps with an empty link;
// a send wakes it at once.
const idleWait = time.Second

// deliver writes the packets of one direction as they arrive on its link.
func (p *Proxy) deliver(pt *path, write func([]byte)) {
	t := time.NewTimer(idleWait)
	defer t.Stop()
	for {
		pt.mu.Lock()
		pkts := pt.link.Deliver(time.Now())
		next, ok := pt.link.NextDelivery()
		pt.mu.Unlock()
		for _, pkt := range pkts {
			write(pkt.Data)
		}
		wait := idleWait
		if ok {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		case <-pt.wake:
		}
	}
}

// Close stops the proxy: it closes every socket, which ends the readers,
// stops the delivery goroutines and waits for all of them. Packets still
// on the links are dropped.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	clients := p.byID
	p.mu.Unlock()
	p.cancel()
	err := p.conn.Close()
	for _, c := range clients {
		if cerr := c.up.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("lossyproxy: close: %w", err)
	}
	return nil
}
