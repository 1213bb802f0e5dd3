package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// probeName is the file the watchdog creates and removes at the root of
// the data directory. It is not a list file: the System ignores it.
const probeName = ".probe"

// watchDir checks the data directory every interval and returns an error
// as soon as it is unusable: gone, not a directory, replaced by another
// one (the System would go on writing into the removed one, through its
// open handle, and lose everything), or refusing a new file (read-only,
// permissions, I/O errors). A full disk is not fatal: the System fails the
// writes and resumes when space returns, and a restart would not help;
// it is logged and reported by /healthz. want is the directory as it was
// just after the System opened it: the caller takes it with os.Stat before
// it reports that it is listening, so a directory replaced at any moment
// after that is caught (one replaced between Open and that Stat is not).
// watchDir returns nil when ctx ends. Every outcome is recorded in h.
func watchDir(ctx context.Context, dir string, want os.FileInfo, interval time.Duration, h *health, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := checkDir(dir, want)
		h.set(err)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
			log.Warn("data directory full: changes fail until space returns", "dir", dir, "err", err)
		default:
			return fmt.Errorf("data directory unusable: %w", err)
		}
	}
}

// checkDir checks that dir is still the directory want and that a file
// can be created, written and removed in it.
func checkDir(dir string, want os.FileInfo) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is no longer a directory", dir)
	}
	if !os.SameFile(fi, want) {
		return fmt.Errorf("%s was replaced by another directory", dir)
	}
	probe := filepath.Join(dir, probeName)
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString("probe\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(probe); err == nil {
		err = rerr
	}
	return err
}
