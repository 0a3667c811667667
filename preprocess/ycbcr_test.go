package preprocess

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestFancyUpsampleByHand: libjpeg's h2v2 triangle filter on a 2×2 plane, worked out from
// jdsample.c: each output is (9·near + 3·side + 3·vertical + 1·diagonal + bias) / 16, edges
// replicated, bias 8 on even columns and 7 on odd ones.
func TestFancyUpsampleByHand(t *testing.T) {
	p := []uint8{0, 160, 80, 240}
	got := fancyUpsample(p, 2, 2, 2, true)
	// Row 0 (upper output of input row 0; the row above is row 0 itself):
	// colsum = 4·in: c0 = 0, c1 = 640. Out: (0·4+8)>>4 = 0, (0·3+640+7)>>4 = 40,
	// (640·3+0+8)>>4 = 120, (640·4+7)>>4 = 160.
	// Row 1 (lower output of row 0, next row 1): colsum c0 = 0·3+80 = 80, c1 = 160·3+240 = 720.
	// Out: (80·4+8)>>4 = 20, (80·3+720+7)>>4 = 60, (720·3+80+8)>>4 = 140, (720·4+7)>>4 = 180.
	// Row 2 (upper output of row 1, the row above 0): c0 = 80·3+0 = 240, c1 = 240·3+160 = 880.
	// Out: (240·4+8)>>4 = 60, (240·3+880+7)>>4 = 100, (880·3+240+8)>>4 = 180, (880·4+7)>>4 = 220.
	// Row 3: c0 = 320, c1 = 960: 80, (960+960+7)>>4 = 120, (2880+320+8)>>4 = 200, (3840+7)>>4 = 240.
	want := []uint8{0, 40, 120, 160, 20, 60, 140, 180, 60, 100, 180, 220, 80, 120, 200, 240}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("h2v2 = %v, want %v", got, want)
		}
	}
	// h2v1 on one row: (3·near + far + 1 or 2) / 4, the two ends copied.
	got = fancyUpsample([]uint8{0, 100, 200}, 3, 3, 1, false)
	want = []uint8{0, 25, 75, 125, 175, 200}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("h2v1 = %v, want %v", got, want)
		}
	}
}

// TestDecodeMatchesLibjpeg compares Decode with libjpeg-turbo's own decoding of the same
// files (testdata/libjpeg, written by gen_libjpeg.py through PIL). The upsampling and the
// colour conversion are libjpeg's; the two inverse DCTs differ in rounding, which the
// bounds allow. The replicated decoding must stay measurably further away, or the
// comparison would not tell the two apart.
func TestDecodeMatchesLibjpeg(t *testing.T) {
	dir := filepath.Join("testdata", "libjpeg")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Cases []struct {
			Name          string
			Width, Height int
		}
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases.Cases {
		t.Run(c.Name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, c.Name+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, c.Name+".rgb"))
			if err != nil {
				t.Fatal(err)
			}
			fancy, err := DecodeBytes(data, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			replicated, err := Spec{JPEGChroma: ChromaReplicated}.Decode(bytes.NewReader(data), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if fancy.W != c.Width || fancy.H != c.Height || len(want) != len(fancy.Pix) {
				t.Fatalf("decoded %dx%d, want %dx%d (%d bytes)", fancy.W, fancy.H, c.Width, c.Height, len(want))
			}
			fMax, fMean := pixelDiff(fancy.Pix, want)
			rMax, rMean := pixelDiff(replicated.Pix, want)
			t.Logf("libjpeg upsampling: max %d, mean %.3f levels; replicated: max %d, mean %.3f", fMax, fMean, rMax, rMean)
			if fMax > 3 || fMean > 0.2 {
				t.Errorf("differs from libjpeg by up to %d levels (mean %.3f): want ≤ 3 (mean ≤ 0.2), the inverse DCTs' rounding", fMax, fMean)
			}
			if c.Name[:3] != "444" && c.Width > 2 && rMean < 4*fMean+0.5 {
				t.Errorf("replicated chroma is as close to libjpeg (mean %.3f) as its upsampling (%.3f): the fixture does not tell them apart", rMean, fMean)
			}
		})
	}
}

func pixelDiff(a, b []uint8) (maxD int, mean float64) {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		d = max(d, -d)
		maxD = max(maxD, d)
		sum += d
	}
	return maxD, float64(sum) / float64(len(a))
}
