package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// Metadata keys (ONNX metadata_props). They are part of the file format: keep them stable.
const (
	KeyFormat          = "natgw.format"           // FormatVersion
	KeyTask            = "natgw.task"             // task name
	KeyArch            = "natgw.arch"             // canonical arch JSON {"ks","e","d","r"}
	KeyResolution      = "natgw.resolution"       // input R (decimal)
	KeyMAdds           = "natgw.madds"            // multiply-adds at batch 1 (decimal)
	KeyParams          = "natgw.params"           // parameters (decimal)
	KeySupernetID      = "natgw.supernet.id"      // supernet id (may be empty)
	KeySupernetVersion = "natgw.supernet.version" // supernet version (may be empty)
	KeySpec            = "natgw.spec"             // search-space spec name
	KeyLabels          = "natgw.labels"           // JSON array of class labels, in logit order
	KeyPreprocess      = "natgw.preprocess"       // JSON of preprocess.Spec
	KeyProducer        = "natgw.producer"         // "natgw <version>"
)

// FormatVersion is the value of KeyFormat this package writes and reads.
const FormatVersion = "1"

// metadata_props is field 14 of ModelProto (onnx.proto).
const modelMetadataField = 14

// Metadata is what an exported model records about itself.
type Metadata struct {
	Task            string
	Arch            supernet.Arch
	Resolution      int
	MAdds           int64
	Params          int64
	SupernetID      string
	SupernetVersion string
	Spec            string
	Labels          []string
	Preprocess      preprocess.Spec
	Producer        string
}

// Classes is the number of logits (one label each).
func (m Metadata) Classes() int { return len(m.Labels) }

// Validate checks that the metadata is self-consistent.
func (m Metadata) Validate() error {
	switch {
	case !validText(m.Task):
		return fmt.Errorf("task %q: empty or has control characters", m.Task)
	case m.Resolution < 1:
		return fmt.Errorf("resolution %d", m.Resolution)
	case m.Arch.R != m.Resolution:
		return fmt.Errorf("arch resolution %d differs from resolution %d", m.Arch.R, m.Resolution)
	case m.MAdds < 0 || m.Params < 0:
		return fmt.Errorf("negative counts: %d MAdds, %d params", m.MAdds, m.Params)
	case !validText(m.Spec):
		return fmt.Errorf("spec %q: empty or has control characters", m.Spec)
	case !validOptional(m.SupernetID) || !validOptional(m.SupernetVersion):
		return fmt.Errorf("supernet id %q / version %q: control characters", m.SupernetID, m.SupernetVersion)
	case len(m.Labels) == 0:
		return errors.New("no labels")
	case !validText(m.Producer):
		return fmt.Errorf("producer %q: empty or has control characters", m.Producer)
	}
	for i, l := range m.Labels {
		if !validText(l) {
			return fmt.Errorf("label %d (%q): empty, not UTF-8 or has control characters", i, l)
		}
	}
	if err := m.Preprocess.Validate(); err != nil {
		return err
	}
	if m.Preprocess.Resolution != m.Resolution {
		return fmt.Errorf("preprocess resolution %d differs from the model's %d", m.Preprocess.Resolution, m.Resolution)
	}
	return nil
}

func validOptional(s string) bool { return s == "" || validText(s) }

// Props returns the metadata as ONNX metadata_props, sorted by key.
func (m Metadata) Props() []*onnx.StringStringEntryProto {
	labels, _ := json.Marshal(m.Labels) // []string cannot fail
	pp, _ := json.Marshal(m.Preprocess) // plain values
	kv := map[string]string{
		KeyFormat:          FormatVersion,
		KeyTask:            m.Task,
		KeyArch:            string(m.Arch.JSON()),
		KeyResolution:      strconv.Itoa(m.Resolution),
		KeyMAdds:           strconv.FormatInt(m.MAdds, 10),
		KeyParams:          strconv.FormatInt(m.Params, 10),
		KeySupernetID:      m.SupernetID,
		KeySupernetVersion: m.SupernetVersion,
		KeySpec:            m.Spec,
		KeyLabels:          string(labels),
		KeyPreprocess:      string(pp),
		KeyProducer:        m.Producer,
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*onnx.StringStringEntryProto, len(keys))
	for i, k := range keys {
		out[i] = &onnx.StringStringEntryProto{Key: k, Value: kv[k]}
	}
	return out
}

// ParseProps reads metadata from a model's metadata_props as a map (what onnxruntime's
// model metadata gives). Keys outside the natgw.* set are ignored.
func ParseProps(props map[string]string) (Metadata, error) {
	m, err := parseProps(props)
	if err != nil {
		return Metadata{}, err
	}
	return m, nil
}

func parseProps(props map[string]string) (Metadata, error) {
	var m Metadata
	get := func(k string) (string, error) {
		v, ok := props[k]
		if !ok {
			return "", fmt.Errorf("metadata: %s missing", k)
		}
		return v, nil
	}
	f, err := get(KeyFormat)
	if err != nil {
		return m, fmt.Errorf("%w (not a natgw export?)", err)
	}
	if f != FormatVersion {
		return m, fmt.Errorf("metadata: %s is %q, want %q", KeyFormat, f, FormatVersion)
	}
	strs := []struct {
		key string
		dst *string
	}{
		{KeyTask, &m.Task}, {KeySupernetID, &m.SupernetID}, {KeySupernetVersion, &m.SupernetVersion},
		{KeySpec, &m.Spec}, {KeyProducer, &m.Producer},
	}
	for _, s := range strs {
		if *s.dst, err = get(s.key); err != nil {
			return m, err
		}
	}
	ints := []struct {
		key string
		dst *int64
	}{{KeyMAdds, &m.MAdds}, {KeyParams, &m.Params}}
	for _, s := range ints {
		v, err := get(s.key)
		if err != nil {
			return m, err
		}
		if *s.dst, err = strconv.ParseInt(v, 10, 64); err != nil {
			return m, fmt.Errorf("metadata: %s: %w", s.key, err)
		}
	}
	v, err := get(KeyResolution)
	if err != nil {
		return m, err
	}
	r, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return m, fmt.Errorf("metadata: %s: %w", KeyResolution, err)
	}
	m.Resolution = int(r)
	if v, err = get(KeyArch); err != nil {
		return m, err
	}
	if m.Arch, err = supernet.ParseArch([]byte(v)); err != nil {
		return m, fmt.Errorf("metadata: %s: %w", KeyArch, err)
	}
	if v, err = get(KeyLabels); err != nil {
		return m, err
	}
	if err := strictJSON(v, &m.Labels); err != nil {
		return m, fmt.Errorf("metadata: %s: %w", KeyLabels, err)
	}
	if v, err = get(KeyPreprocess); err != nil {
		return m, err
	}
	if err := strictJSON(v, &m.Preprocess); err != nil {
		return m, fmt.Errorf("metadata: %s: %w", KeyPreprocess, err)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("metadata: %w", err)
	}
	return m, nil
}

// strictJSON decodes one JSON value, rejecting unknown fields and trailing data: a
// preprocessing field this version does not know must not be silently ignored.
func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// ReadMetadata reads the natgw metadata of a serialized ONNX model. It walks only the
// model's top-level fields and decodes just metadata_props, so the weights are not copied.
func ReadMetadata(model []byte) (Metadata, error) {
	props := map[string]string{}
	b := model
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return Metadata{}, fmt.Errorf("metadata: not an ONNX model: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == modelMetadataField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return Metadata{}, fmt.Errorf("metadata: not an ONNX model: %w", protowire.ParseError(n))
			}
			var e onnx.StringStringEntryProto
			if err := proto.Unmarshal(v, &e); err != nil {
				return Metadata{}, fmt.Errorf("metadata: not an ONNX model (metadata_props entry: %w)", err)
			}
			if _, dup := props[e.Key]; dup {
				return Metadata{}, fmt.Errorf("metadata: key %q appears twice", e.Key)
			}
			props[e.Key] = e.Value
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return Metadata{}, fmt.Errorf("metadata: not an ONNX model: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return ParseProps(props)
}

// validText rejects empty strings, invalid UTF-8 and control characters (labels are
// printed one per line; proto3 strings must be UTF-8).
func validText(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, isControl)
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
