// Package files reads the small text and binary files natgw's commands take: whole, with a
// size limit, so that a wrong path cannot make a command read gigabytes.
package files

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadLimited reads a whole file of at most limit bytes.
func ReadLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// MaxLabelsBytes bounds a labels file.
const MaxLabelsBytes = 16 << 20

// ReadLabels reads a labels file: one label per line, kept as written; a trailing newline
// is fine, an empty line or an empty file is an error.
func ReadLabels(path string) ([]string, error) {
	data, err := ReadLimited(path, MaxLabelsBytes)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	text := strings.TrimSuffix(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if text == "" {
		return nil, fmt.Errorf("labels %s: empty file", path)
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			return nil, fmt.Errorf("labels %s: line %d is empty", path, i+1)
		}
	}
	return lines, nil
}
