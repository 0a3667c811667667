package tflite

import "testing"

// FuzzParse: arbitrary bytes give a model or an error, never a panic; whatever parses can
// be dequantized and prepared for running without panicking either. (Marshal is left out:
// the flatbuffers builder deduplicates vtables in quadratic time, harmless for real models.)
func FuzzParse(f *testing.F) {
	good := tinyModel(3, 4, 3, 5).Marshal()
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add([]byte("\x08\x00\x00\x00TFL3\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		for _, sg := range m.Subgraphs {
			for i := range sg.Tensors {
				_, _ = sg.Tensors[i].Dequantize()
			}
		}
		_, _ = NewRunner(m)
	})
}
