package sqlcommon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jetstreamproto/jsp/server/storage"
)

// Migration is one versioned schema change, embedded as a file named
// NNNN_description.sql. Versions start at 1 and have no gaps.
type Migration struct {
	// Version is the number before the first underscore.
	Version int
	// Name is the file name.
	Name string
	// SQL is the file's content.
	SQL string
	// Checksum is the hex SHA-256 of SQL; the schema_migrations table
	// records it so that an edited migration is detected.
	Checksum string
}

// Applied is a schema_migrations row.
type Applied struct {
	Version  int
	Checksum string
}

// LoadMigrations reads the *.sql files of dir in fsys, ordered by version.
// File names must be NNNN_description.sql with versions 1, 2, 3, ...
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions start at 1 without gaps)", m.Name, m.Version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}

// Pending compares the applied migrations with the known ones and returns
// those still to apply, in order. It fails with storage.ErrSchemaTooNew when
// the database has a version this build does not know, and with
// storage.ErrSchemaMismatch when an applied migration's checksum differs or
// the applied versions have a gap.
func Pending(applied []Applied, known []Migration) ([]Migration, error) {
	slices.SortFunc(applied, func(a, b Applied) int { return a.Version - b.Version })
	for i, a := range applied {
		if a.Version > len(known) {
			return nil, fmt.Errorf("%w: database has version %d, this build knows up to %d", storage.ErrSchemaTooNew, a.Version, len(known))
		}
		if a.Version != i+1 {
			return nil, fmt.Errorf("%w: applied versions skip to %d", storage.ErrSchemaMismatch, a.Version)
		}
		if k := known[a.Version-1]; k.Checksum != a.Checksum {
			return nil, fmt.Errorf("%w: version %d (%s)", storage.ErrSchemaMismatch, a.Version, k.Name)
		}
	}
	return known[len(applied):], nil
}
