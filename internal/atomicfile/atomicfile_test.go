package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFunc(p, func(w io.Writer) error {
		w.Write([]byte("half"))
		return errors.New("boom")
	}); err == nil {
		t.Fatal("error not returned")
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "one" || st.Mode().Perm() != Perm {
		t.Fatalf("content %q mode %v after a failed write", b, st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files left in the folder", len(ents))
	}
}
