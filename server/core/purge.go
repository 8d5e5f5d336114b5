package core

import (
	"context"
	"time"
)

// DefaultPurgeInterval is how often a core purges expired rows from the
// store (storage.Store.Purge): de-duplication entries older than the
// store's DedupWindow and expired key/value entries. Reads already ignore
// expired rows; the purge keeps the tables bounded by the window.
const DefaultPurgeInterval = 10 * time.Minute

// purgeLoop calls Store.Purge every PurgeInterval until Close. Several
// cores on one database each purge; a purge is idempotent.
func (c *Core) purgeLoop() {
	t := time.NewTicker(c.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.purge()
		}
	}
}

// purge runs one Store.Purge within RequestTimeout.
func (c *Core) purge() {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	st, err := c.cfg.Store.Purge(ctx)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn("core: purge failed", "err", err)
		}
		return
	}
	if st.Dedup > 0 || st.KV > 0 {
		c.log.Debug("core: purged expired rows", "dedup", st.Dedup, "kv", st.KV)
	}
}
