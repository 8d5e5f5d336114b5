package ddos

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		errLine  string // substring of the error; "" means success
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# block list\n\n10.0.0.0/8  # office\n  192.0.2.7\n2001:db8::/32\n", []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"}, ""},
		{"masked", "10.1.2.3/8\n", []string{"10.0.0.0/8"}, ""},
		{"mapped address", "::ffff:192.0.2.1\n", []string{"192.0.2.1/32"}, ""},
		{"bad cidr", "10.0.0.0/8\n# ok\n10.0.0.0/33\n", nil, "line 3"},
		{"bad address", "10.0.0.0/8\nnot-an-ip\n", nil, "line 2"},
		{"zone", "fe80::1%eth0\n", nil, "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseList(strings.NewReader(tc.in))
			if tc.errLine != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errLine) {
					t.Fatalf("err = %v, want one naming %q", err, tc.errLine)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i, w := range tc.want {
				if got[i].String() != w {
					t.Fatalf("entry %d = %v, want %s", i, got[i], w)
				}
			}
		})
	}
}

func TestParseListCapsLines(t *testing.T) {
	in := strings.Repeat("\n", MaxListLines+1)
	if _, err := ParseList(strings.NewReader(in)); err == nil {
		t.Fatal("a list over MaxListLines parsed")
	}
}

// TestSetLists: new lists take effect for the next check; an invalid list
// is refused and the old lists stay.
func TestSetLists(t *testing.T) {
	f, err := New(Config{Block: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("198.51.100.9")
	if !f.Blocked(a) || f.Blocked(b) {
		t.Fatal("initial lists not applied")
	}
	if err := f.SetLists(Lists{Block: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.9/32")}}); err != nil {
		t.Fatal(err)
	}
	if f.Blocked(a) || !f.Allowed(a) || !f.Blocked(b) {
		t.Fatalf("new lists not applied: %+v", f.Lists())
	}
	if _, err := f.BeginHandshake(b); jsperr.CodeOf(err) != jsperr.Blocked {
		t.Fatalf("BeginHandshake from a newly blocked address: %v", err)
	}
	if err := f.SetLists(Lists{Block: []netip.Prefix{{}}}); err == nil {
		t.Fatal("invalid prefix accepted")
	}
	if !f.Blocked(b) {
		t.Fatal("refused SetLists changed the lists")
	}
}
