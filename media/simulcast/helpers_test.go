package simulcast

import (
	"bytes"
	"os"
)

// openFile reads a whole file into memory, so tests need not close it.
func openFile(path string) (*bytes.Reader, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}
