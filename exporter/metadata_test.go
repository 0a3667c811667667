package exporter

import (
	"reflect"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

func TestMetadataRoundTrip(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 4)
	a := spec.Uniform(5, 4, 3, 160)
	a.KS[19] = 7 // beyond stage 5's depth 3: canonicalised away
	sub := randomSubnet(t, spec, 4, &a)
	pp := preprocess.DefaultSpec(160)
	pp.CropFraction = 0.875
	labels := []string{"daisy", "rosé", "tulip \"red\"", "sun flower"}
	data, err := Export(sub, Options{Task: "flowers", Labels: labels, Preprocess: &pp,
		SupernetID: "ofa-w1", SupernetVersion: "2", ProducerVersion: "0.3.1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	c := sub.Count()
	want := Metadata{
		Task: "flowers", Arch: sub.Arch, Resolution: 160, MAdds: c.MAdds, Params: c.Params,
		SupernetID: "ofa-w1", SupernetVersion: "2", Spec: spec.Name, Labels: labels,
		Preprocess: pp, Producer: "natgw 0.3.1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	if got.Arch.KS[19] != 3 || got.Classes() != 4 {
		t.Fatalf("arch not canonical or classes wrong: %v, %d", got.Arch, got.Classes())
	}
	// The same through a key/value map, as onnxruntime reports it.
	var m onnx.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	props := map[string]string{}
	for _, p := range m.MetadataProps {
		props[p.Key] = p.Value
	}
	if props[KeyArch] != string(sub.Arch.JSON()) || props[KeyTask] != "flowers" {
		t.Fatalf("props: %v", props)
	}
	got2, err := ParseProps(props)
	if err != nil || !reflect.DeepEqual(got2, want) {
		t.Fatalf("ParseProps: %v\n%+v", err, got2)
	}

	// Defaults.
	data, err = Export(sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ReadMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Task != DefaultTask || !reflect.DeepEqual(d.Labels, []string{"class_0", "class_1", "class_2", "class_3"}) ||
		d.Preprocess != preprocess.DefaultSpec(160) || d.Producer != "natgw devel" || d.SupernetID != "" {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestParsePropsErrors(t *testing.T) {
	sub := randomSubnet(t, supernet.OFAMobileNetV3(1.0, 2), 1, nil)
	data, err := Export(sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var m onnx.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	good := map[string]string{}
	for _, p := range m.MetadataProps {
		good[p.Key] = p.Value
	}
	tests := []struct {
		name, key, value string // value "\x00" deletes the key
		want             string
	}{
		{"no format", KeyFormat, "\x00", "natgw.format missing"},
		{"future format", KeyFormat, "2", `want "1"`},
		{"missing labels", KeyLabels, "\x00", "natgw.labels missing"},
		{"labels not array", KeyLabels, `{"a":1}`, "natgw.labels"},
		{"labels trailing", KeyLabels, `["a","b"] x`, "trailing"},
		{"no labels", KeyLabels, `[]`, "no labels"},
		{"arch unknown field", KeyArch, `{"ks":[],"e":[],"d":[],"r":128,"w":1}`, "unknown field"},
		{"arch resolution", KeyArch, strings.Replace(good[KeyArch], `"r":128`, `"r":132`, 1), "arch resolution 132"},
		{"resolution", KeyResolution, "abc", "natgw.resolution"},
		{"madds", KeyMAdds, "1e9", "natgw.madds"},
		{"negative params", KeyParams, "-1", "negative"},
		{"preprocess unknown field", KeyPreprocess, strings.Replace(good[KeyPreprocess], "{", `{"gamma":2,`, 1), "unknown field"},
		{"preprocess invalid", KeyPreprocess, strings.Replace(good[KeyPreprocess], `"RGB"`, `"BGR"`, 1), "channel_order"},
		{"empty task", KeyTask, "", "task"},
		{"empty spec", KeySpec, "", "spec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := map[string]string{}
			for k, v := range good {
				p[k] = v
			}
			if tt.value == "\x00" {
				delete(p, tt.key)
			} else {
				p[tt.key] = tt.value
			}
			_, err := ParseProps(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := ParseProps(good); err != nil {
		t.Fatalf("unchanged props: %v", err)
	}
}

func TestReadMetadataErrors(t *testing.T) {
	sub := randomSubnet(t, supernet.OFAMobileNetV3(1.0, 2), 1, nil)
	data, err := Export(sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var m onnx.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: KeyTask, Value: "again"})
	dup, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = nil
	bare, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		model []byte
		want  string
	}{
		{"empty", nil, "natgw.format missing"},
		{"text", []byte("hello, this is not a model"), "not an ONNX model"},
		{"truncated", data[:len(data)/2], "not an ONNX model"},
		{"no metadata", bare, "not a natgw export"},
		{"duplicate key", dup, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMetadata(tt.model)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzReadMetadata: arbitrary bytes give metadata or an error, never a panic.
func FuzzReadMetadata(f *testing.F) {
	sub := randomSubnet(f, supernet.OFAMobileNetV3(1.0, 2), 1, nil)
	data, err := Export(sub, Options{Labels: []string{"a", "b"}})
	if err != nil {
		f.Fatal(err)
	}
	// Seed with the metadata-only part of a real export, which keeps the fuzzer on the
	// interesting fields instead of megabytes of weights.
	var m onnx.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		f.Fatal(err)
	}
	m.Graph = nil
	small, err := proto.Marshal(&m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small)
	f.Add([]byte{})
	f.Add([]byte{0x72, 0x05, 0x0a, 0x01, 'k', 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := ReadMetadata(b)
		if err == nil {
			if vErr := md.Validate(); vErr != nil {
				t.Fatalf("ReadMetadata accepted invalid metadata: %v", vErr)
			}
		}
	})
}
