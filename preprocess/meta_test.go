package preprocess

import "testing"

func TestFromMeta(t *testing.T) {
	def := DefaultSpec(0)
	own := DefaultSpec(224)
	own.Mean = [3]float32{0.5, 0.5, 0.5}
	own.Std = own.Mean
	own.JPEGChroma = ChromaReplicated // recorded before specs named their JPEG chroma
	fancy := own
	fancy.JPEGChroma = ChromaFancy
	ownJSON := `{"resolution":224,"crop_fraction":1,"interpolation":"bilinear","mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5],"channel_order":"RGB","layout":"NCHW"}`
	for _, c := range []struct {
		name    string
		meta    map[string]string
		r       int
		want    Spec
		wantErr bool
	}{
		{"none: the default at r", nil, 128, DefaultSpec(128), false},
		{"recorded, resolution replaced", map[string]string{MetaKey: ownJSON}, 96, func() Spec { s := own; s.Resolution = 96; return s }(), false},
		{"recorded, resolution left to the caller", map[string]string{MetaKey: ownJSON}, 0, func() Spec { s := own; s.Resolution = 0; return s }(), false},
		{"recorded with libjpeg's chroma", map[string]string{MetaKey: ownJSON[:len(ownJSON)-1] + `,"jpeg_chroma":"fancy"}`}, 224, fancy, false},
		{"unknown chroma", map[string]string{MetaKey: ownJSON[:len(ownJSON)-1] + `,"jpeg_chroma":"nearest"}`}, 224, Spec{}, true},
		{"not JSON", map[string]string{MetaKey: "{"}, 96, Spec{}, true},
		{"invalid spec", map[string]string{MetaKey: `{"crop_fraction":7,"std":[1,1,1]}`}, 96, Spec{}, true},
	} {
		got, err := FromMeta(c.meta, c.r, def)
		if (err != nil) != c.wantErr {
			t.Fatalf("%s: err %v", c.name, err)
		}
		if !c.wantErr && got != c.want {
			t.Fatalf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
