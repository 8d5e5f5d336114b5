// Package pgtest gives tests a PostgreSQL database. [DSN] returns the DSN
// of a fresh, empty schema that is dropped when the test ends, on:
//
//   - the server named by the environment variable JSP_TEST_POSTGRES_DSN,
//     when set; or
//   - a throwaway server that pgtest starts on first use: initdb into a new
//     temporary directory, pg_ctl -w start listening only on a Unix socket
//     in that directory (on a free port number, which names the socket),
//     trust authentication, stopped and removed by [Run] when the package's
//     tests end. The binaries come from PATH or /usr/lib/postgresql/*/bin
//     (the newest version). PostgreSQL refuses to run as root, so when the
//     tests run as root the server runs as the "postgres" user (which the
//     Debian package creates), or "nobody" when that user does not exist,
//     through runuser (or su).
//
// When no PostgreSQL binaries are found the test is skipped with a message
// naming .ci/postgres.sh, which installs them; with
// JSP_TEST_POSTGRES_REQUIRED=1 (as CI sets) it fails instead, so that CI
// never skips silently.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by pgtest.
const (
	// EnvDSN names an existing server to test against instead of starting
	// one. Its user needs the right to create schemas in the database.
	EnvDSN = "JSP_TEST_POSTGRES_DSN"
	// EnvRequired, when "1", turns a skip for missing binaries into a
	// failure.
	EnvRequired = "JSP_TEST_POSTGRES_REQUIRED"
)

// startTimeout bounds initdb plus server start-up.
const startTimeout = 60 * time.Second

// errNoBinaries means PostgreSQL is not installed.
var errNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; run .ci/postgres.sh to install them")

// server is a throwaway PostgreSQL server.
type server struct {
	dir    string   // temporary directory: data/, the socket, the log
	bin    string   // directory of initdb, pg_ctl and postgres
	prefix []string // runs a command as the server's user; empty when not root
	dsn    string
}

var (
	mu       sync.Mutex
	srv      *server // guarded by mu; started on first use
	startErr error   // guarded by mu; a failed start is not retried
	schemas  atomic.Int64
)

// Run runs the package's tests and then stops the throwaway server, if one
// was started. Call it from TestMain and exit with its result:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
func Run(m *testing.M) int {
	code := m.Run()
	if err := Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Stop stops and removes the throwaway server. It is safe to call when
// none was started.
func Stop() error {
	mu.Lock()
	defer mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.stop()
	srv = nil
	return err
}

// DSN returns the DSN of a fresh schema, first in the search_path, on the
// test server; the schema is dropped when the test ends. It skips the test
// when PostgreSQL is not installed (see the package comment).
func DSN(t testing.TB) string {
	t.Helper()
	base, err := baseDSN()
	if errors.Is(err, errNoBinaries) && os.Getenv(EnvRequired) != "1" {
		t.Skip("pgtest: ", err)
	}
	if err != nil {
		t.Fatal("pgtest: ", err)
	}
	name := fmt.Sprintf("jsp_test_%d_%d", os.Getpid(), schemas.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin(ctx, base, `CREATE SCHEMA `+name); err != nil {
		t.Fatal("pgtest: ", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin(ctx, base, `DROP SCHEMA `+name+` CASCADE`); err != nil {
			t.Error("pgtest: ", err)
		}
	})
	return withSearchPath(base, name)
}

// admin runs one statement on its own connection.
func admin(ctx context.Context, dsn, stmt string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// withSearchPath adds a search_path run-time parameter to a URL or
// keyword/value DSN.
func withSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// baseDSN returns the DSN of the server to use, starting one if needed.
func baseDSN() (string, error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, nil
	}
	mu.Lock()
	defer mu.Unlock()
	if srv == nil && startErr == nil {
		srv, startErr = start()
	}
	if startErr != nil {
		return "", startErr
	}
	return srv.dsn, nil
}

// findBinaries returns the directory holding initdb, pg_ctl and postgres.
func findBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		// Resolve symlinks: pg_ctl finds postgres next to its real path.
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first: sort by the numeric version directory.
	slices.SortFunc(matches, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	dirs = append(dirs, matches...)
	for _, d := range dirs {
		ok := true
		for _, exe := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, exe)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errNoBinaries
}

// runAs returns the command prefix that runs a program as an unprivileged
// user and that user's ids, or no prefix when not running as root.
func runAs() (prefix []string, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	var u *user.User
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if u == nil {
		return nil, 0, 0, fmt.Errorf("running as root and neither user postgres nor nobody exists to run PostgreSQL as")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if p, err := exec.LookPath("runuser"); err == nil {
		return []string{p, "-u", u.Username, "--"}, uid, gid, nil
	}
	if p, err := exec.LookPath("su"); err == nil {
		// su runs a shell command line; the wrapper is completed in cmd.
		return []string{p, "-s", "/bin/sh", u.Username, "-c"}, uid, gid, nil
	}
	return nil, 0, 0, fmt.Errorf("running as root and neither runuser nor su is available to drop privileges for PostgreSQL")
}

// cmd builds a command run as the server's user.
func (s *server) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{filepath.Join(s.bin, name)}, args...)
	if len(s.prefix) == 0 {
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	if filepath.Base(s.prefix[0]) == "su" {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		argv = []string{strings.Join(quoted, " ")}
	}
	full := append(slices.Clone(s.prefix), argv...)
	return exec.CommandContext(ctx, full[0], full[1:]...)
}

func (s *server) run(ctx context.Context, name string, args ...string) error {
	out, err := s.cmd(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// freePort returns a TCP port number that was free a moment ago. The
// server listens on no TCP port; the number only names its socket file.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start() (*server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	prefix, uid, gid, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "jsp-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, bin: bin, prefix: prefix}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("hand %s to the server's user: %w", dir, err)
		}
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	data := filepath.Join(dir, "data")
	// --no-sync: a throwaway cluster need not survive a power cut.
	if err := s.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -c port=%d -c max_connections=50 -c shared_buffers=32MB", dir, port)
	if err := s.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, log)
	}
	s.dsn = fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", url.QueryEscape(dir), port)
	return s, nil
}

func (s *server) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err := s.run(ctx, "pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "fast", "-w", "stop")
	if rmErr := os.RemoveAll(s.dir); err == nil && rmErr != nil {
		err = rmErr
	}
	return err
}
