package specializer

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func TestPlotFront(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 40)
	es := arch.Snapshot()
	best, err := Best(es, Budget{MAdds: es[1].MAdds / 2})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "front.png")
	if err := PlotFront(es, []task.Entry{best}, path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 250 {
		t.Fatalf("image %v too small", b)
	}
	if err := PlotFront(nil, nil, path); err == nil {
		t.Fatal("empty archive: no error")
	}
}
