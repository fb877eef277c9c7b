package portable

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// maxDepth bounds the nesting of objects and arrays in an export file.
const maxDepth = 64

// checkJSON reports whether b is exactly one JSON value (ErrMalformed if
// not) in which no object repeats a key (ErrDuplicateKey). encoding/json
// keeps the last of two equal keys without a word; a file that says two
// things at once is refused instead.
func checkJSON(b []byte) error {
	if !json.Valid(b) {
		return fmt.Errorf("%w: not a single JSON value", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		keys    map[string]struct{} // nil for an array
		wantKey bool
		base    string // the path of this object or array
		member  string // the path of the current member
	}
	var stack []*frame
	// childPath is the path of a value starting now.
	childPath := func() string {
		if len(stack) == 0 {
			return "$"
		}
		top := stack[len(stack)-1]
		if top.keys == nil {
			return top.base + "[]"
		}
		return top.member
	}
	// valueDone records that a value ended inside the enclosing object.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 {
				return fmt.Errorf("%w: truncated", ErrMalformed)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].wantKey {
			top := stack[n-1]
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return fmt.Errorf("%w: object key is not a string", ErrMalformed)
			}
			if _, dup := top.keys[key]; dup {
				return fmt.Errorf("%w: %q in %s", ErrDuplicateKey, key, top.base)
			}
			top.keys[key] = struct{}{}
			top.wantKey = false
			top.member = top.base + "." + key
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{', '[':
				if len(stack) >= maxDepth {
					return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
				}
				f := &frame{base: childPath()}
				if d == '{' {
					f.keys = map[string]struct{}{}
					f.wantKey = true
				}
				stack = append(stack, f)
			case ']':
				stack = stack[:len(stack)-1]
				valueDone()
			default:
				return fmt.Errorf("%w: unexpected %q", ErrMalformed, d)
			}
		default:
			valueDone()
		}
	}
}
