package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
)

// Extra holds the JSON members of an object that this package has no field for.
// Other BitBrat services add fields to the envelope; keeping them verbatim means a
// message that passes through this edge comes out with everything it came in with.
// Keys in Extra must not repeat a key the struct itself encodes.
type Extra map[string]json.RawMessage

// jsonFields lists the JSON member names a struct type encodes itself.
func jsonFields(v any) map[string]struct{} {
	t := reflect.TypeOf(v)
	names := make(map[string]struct{}, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names[name] = struct{}{}
	}
	return names
}

// unmarshalKeep decodes b into known (a pointer to a struct type with no JSON methods
// of its own) and collects the members known does not name into extra.
func unmarshalKeep(b []byte, known any, extra *Extra, fields map[string]struct{}) error {
	if err := json.Unmarshal(b, known); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	var out Extra
	for k, v := range all {
		if _, ok := fields[k]; ok {
			continue
		}
		if out == nil {
			out = make(Extra)
		}
		out[k] = v
	}
	*extra = out
	return nil
}

// marshalKeep encodes known (a struct value with no JSON methods of its own) and
// appends extra's members, in key order so that output is deterministic.
func marshalKeep(known any, extra Extra) ([]byte, error) {
	b, err := json.Marshal(known)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.Grow(len(b) + 64*len(keys))
	buf.Write(b[:len(b)-1]) // drop the closing brace
	first := bytes.Equal(b, []byte("{}"))
	for _, k := range keys {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		v := extra[k]
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
