// Package atomicfile replaces files atomically: write a temporary file beside the target,
// sync it, then rename it over the target, so that a killed process never leaves half a
// file behind (archives, checkpoints and models are read by other processes).
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// Perm is the mode of written files: readable by the service user in containers.
const Perm = 0o644

// Write replaces path with data.
func Write(path string, data []byte) error {
	return WriteFunc(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc replaces path with what fn writes (buffered).
func WriteFunc(path string, fn func(w io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fn(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(Perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
