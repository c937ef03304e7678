//go:build !unix

package sqlite

import (
	"fmt"
	"os"
)

// lockFile creates path exclusively where flock is not available; a stale
// file left by a crash must be removed by hand.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: database is in use by another process (lock %s): %w", path, err)
	}
	return f, nil
}

func unlockFile(f *os.File) error {
	name := f.Name()
	err := f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}
