package chat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/services/files"
)

// Setup creates the service for core c and registers it in reg (the
// registry c was configured with); call it before c.Start. cfg.Host and
// cfg.Store default to c and c's store, and cfg.EventLog to the cluster's
// event log on c's bus (bus.Subjects.EventLog).
func Setup(ctx context.Context, c *core.Core, reg *core.Registry, cfg Config) (*Service, error) {
	if cfg.Host == nil {
		cfg.Host = c
	}
	if cfg.Store == nil {
		cfg.Store = c.Store()
	}
	if cfg.EventLog == nil {
		subj := c.Subjects()
		log, err := c.Bus().EventLog(ctx, subj.EventLog())
		if err != nil {
			return nil, fmt.Errorf("chat: event log: %w", err)
		}
		cfg.EventLog = log
	}
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Register(reg); err != nil {
		return nil, err
	}
	return s, nil
}

// FileStore adapts the files service's store (server/services/files, the
// Stream API upload target "file.put") to Files: attachments are files
// uploaded there, named by their id.
type FileStore struct{ *files.Store }

var _ Files = FileStore{}

// OpenFileStore opens the files directory dir with the files service's
// limits (0 = its defaults).
func OpenFileStore(dir string, maxSize int64) (FileStore, error) {
	st, err := files.OpenStore(dir, maxSize, 0)
	if err != nil {
		return FileStore{}, fmt.Errorf("chat: attachments: %w", err)
	}
	return FileStore{st}, nil
}

// Stat implements Files.
func (f FileStore) Stat(id string) (int64, string, error) {
	info, err := f.Store.Stat(id)
	if err != nil {
		return 0, "", err
	}
	return info.Size, info.SHA256, nil
}

// Remove implements Files: the file goes; the files service's metadata
// record of it no longer matches anything and is ignored.
func (f FileStore) Remove(id string) error {
	if err := files.ValidName(id, files.DefaultMaxNameLen); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(f.Dir(), id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
