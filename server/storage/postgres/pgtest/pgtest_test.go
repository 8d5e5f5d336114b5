package pgtest

import (
	"context"
	"slices"
	"testing"
)

func TestWithSearchPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@/db?host=%2Ftmp%2Fx&port=5", "postgres://u@/db?host=%2Ftmp%2Fx&port=5&search_path=s1"},
		{"postgres://u:pw@h:5432/db", "postgres://u:pw@h:5432/db?search_path=s1"},
		{"host=/tmp/x dbname=db", "host=/tmp/x dbname=db search_path=s1"},
	} {
		if got := withSearchPath(tc.in, "s1"); got != tc.want {
			t.Errorf("withSearchPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCommandAsUser(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		prefix []string
		want   []string
	}{
		{nil, []string{"/pg/bin/initdb", "-D", "/d ir"}},
		{[]string{"/sbin/runuser", "-u", "postgres", "--"}, []string{"/sbin/runuser", "-u", "postgres", "--", "/pg/bin/initdb", "-D", "/d ir"}},
		// su takes one shell command line: every argument is quoted.
		{[]string{"/bin/su", "-s", "/bin/sh", "postgres", "-c"}, []string{"/bin/su", "-s", "/bin/sh", "postgres", "-c", `'/pg/bin/initdb' '-D' '/d ir'`}},
	} {
		s := &server{bin: "/pg/bin", prefix: tc.prefix}
		if got := s.cmd(ctx, "initdb", "-D", "/d ir").Args; !slices.Equal(got, tc.want) {
			t.Errorf("prefix %v: args %q, want %q", tc.prefix, got, tc.want)
		}
	}
	s := &server{bin: "/pg/bin", prefix: []string{"/bin/su", "-s", "/bin/sh", "postgres", "-c"}}
	if got := s.cmd(ctx, "x", "it's").Args[5]; got != `'/pg/bin/x' 'it'\''s'` {
		t.Errorf("quote = %s", got)
	}
}
