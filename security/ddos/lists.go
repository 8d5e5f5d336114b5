package ddos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Lists are a filter's CIDR block and allow lists (Config.Block,
// Config.Allow).
type Lists struct {
	Block, Allow []netip.Prefix
}

// SetLists replaces the block and allow lists at once; connections and
// handshakes already admitted are not touched (the caller closes those it
// wants gone, see Blocked). Invalid prefixes are refused and the lists in
// force stay.
func (f *Filter) SetLists(l Lists) error {
	for _, p := range append(append([]netip.Prefix(nil), l.Block...), l.Allow...) {
		if !p.IsValid() {
			return fmt.Errorf("ddos: set lists: invalid prefix %v", p)
		}
	}
	f.lists.Store(&Lists{Block: masked(l.Block), Allow: masked(l.Allow)})
	return nil
}

// Lists returns the lists in force (masked prefixes). The slices must not
// be modified.
func (f *Filter) Lists() Lists { return *f.lists.Load() }

// Blocked reports whether ip is on the block list under the list rule
// (longest prefix wins, Block at a tie), without counting a refusal.
func (f *Filter) Blocked(ip netip.Addr) bool { return f.listed(ip) == listedBlock }

// Allowed reports whether ip is on the allow list under the same rule.
func (f *Filter) Allowed(ip netip.Addr) bool { return f.listed(ip) == listedAllow }

// DefaultListPoll is how often a server checks its list files (jsp
// server --block-file, --allow-file) for a new version.
const DefaultListPoll = 5 * time.Second

// MaxListLines caps the lines ParseList reads, so that a wrong file (a
// log, a dump) cannot make the gateway hold an unbounded list.
const MaxListLines = 100_000

// ParseList reads a CIDR list: one prefix per line ("10.0.0.0/8",
// "2001:db8::/32"), or a bare address meaning a single host (/32 or
// /128); blank lines and everything after '#' are ignored. It fails on
// the first malformed line, naming its number, so that a caller can keep
// the list in force rather than load half a file.
func ParseList(r io.Reader) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		if n > MaxListLines {
			return nil, fmt.Errorf("ddos: list: more than %d lines", MaxListLines)
		}
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("ddos: list line %d: %w", n, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("ddos: list line %d: %w", n+1, err)
		}
		return nil, fmt.Errorf("ddos: list: %w", err)
	}
	return out, nil
}

func parseEntry(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q: %w", s, err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
