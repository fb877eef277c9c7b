package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// JSONKeyError reports a key that strict decoding refuses.
type JSONKeyError struct {
	Key    string // the key as sent, with the path of its parent objects
	Reason string // "duplicate key", "unknown key", or "differs only in case from …"
}

func (e *JSONKeyError) Error() string {
	return fmt.Sprintf("JSON key %q: %s", e.Key, e.Reason)
}

// ErrNotJSONObject reports a body that is not one JSON object.
var ErrNotJSONObject = errors.New("the body is not one JSON object")

// StrictJSON options.
type StrictJSON struct {
	// DisallowUnknown refuses keys that match no field of the struct they
	// are decoded into (otherwise they are ignored, as RFC 7591 asks of
	// registration).
	DisallowUnknown bool
}

// DecodeStrictJSON decodes one JSON object from data into v (a pointer to a
// struct). Go's encoding/json matches keys to fields case-insensitively
// and lets the last of duplicated keys win, so a body can say one thing to
// a reader who looks at "redirect_uris" and another to the server (a later
// "Redirect_URIs"). This decoder refuses, at every nesting level:
// duplicated keys in any object; keys of an object decoded into a struct
// that differ only in case from one of its fields; and, with
// DisallowUnknown, keys of such an object that match no field. Anything
// after the object other than white space is refused too.
func (o StrictJSON) Decode(data []byte, v any) error {
	rt := reflect.TypeOf(v)
	if rt == nil || rt.Kind() != reflect.Pointer {
		return errors.New("strict JSON: decode into a pointer")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	first, err := dec.Token()
	if err != nil || first != json.Delim('{') {
		return ErrNotJSONObject
	}
	if err := o.object(dec, rt.Elem(), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrNotJSONObject
	}
	d2 := json.NewDecoder(bytes.NewReader(data))
	if o.DisallowUnknown {
		d2.DisallowUnknownFields()
	}
	return d2.Decode(v)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// deref strips pointers.
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// structural reports whether keys can be checked against t's fields: a
// struct that does not decode itself.
func structural(t reflect.Type) bool {
	if t == nil || t.Kind() != reflect.Struct {
		return false
	}
	return !t.Implements(unmarshalerType) && !reflect.PointerTo(t).Implements(unmarshalerType)
}

// object checks the members of an object whose '{' was read; t is the Go
// type it decodes into (nil: unknown, only duplicates are checked).
func (o StrictJSON) object(dec *json.Decoder, t reflect.Type, path string) error {
	t = deref(t)
	var fields map[string]reflect.Type
	var mapElem reflect.Type
	switch {
	case structural(t):
		fields = jsonFields(t)
	case t != nil && t.Kind() == reflect.Map && !t.Implements(unmarshalerType):
		mapElem = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ErrNotJSONObject
		}
		key, _ := tok.(string)
		full := key
		if path != "" {
			full = path + "." + key
		}
		if seen[key] {
			return &JSONKeyError{Key: full, Reason: "duplicate key"}
		}
		seen[key] = true
		var child reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[key]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return &JSONKeyError{Key: full, Reason: fmt.Sprintf("differs only in case from %q", name)}
					}
				}
				if o.DisallowUnknown {
					return &JSONKeyError{Key: full, Reason: "unknown key"}
				}
			}
			child = ft
		case mapElem != nil:
			child = mapElem
		}
		if err := o.value(dec, child, full); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return ErrNotJSONObject
	}
	return nil
}

// value checks one value; t is the type it decodes into, or nil.
func (o StrictJSON) value(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return ErrNotJSONObject
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	t = deref(t)
	if t != nil && (t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)) {
		t = nil // decodes itself: only duplicates are checked
	}
	switch d {
	case '{':
		return o.object(dec, t, path)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := o.value(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return ErrNotJSONObject
		}
	}
	return nil
}

// jsonFields lists the JSON names of t's fields as encoding/json sees
// them: tags honoured, "-" skipped, embedded structs without a name
// promoted (outer fields win over promoted ones).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		var embedded []reflect.Type
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				if et := deref(f.Type); et.Kind() == reflect.Struct {
					embedded = append(embedded, et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, ok := out[name]; !ok || depth == 0 {
				out[name] = f.Type
			}
		}
		if depth < 8 {
			for _, et := range embedded {
				walk(et, depth+1)
			}
		}
	}
	walk(t, 0)
	return out
}
