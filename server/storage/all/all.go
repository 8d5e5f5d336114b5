// Package all registers every storage backend with server/storage, so
// that storage.Open accepts "sqlite:..." and "postgres://..." DSNs. Import
// it for its side effect:
//
//	import _ "github.com/jetstreamproto/jsp/server/storage/all"
package all

import (
	// Each backend registers its DSN schemes in init.
	_ "github.com/jetstreamproto/jsp/server/storage/postgres"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
)
