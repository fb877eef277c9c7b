package httpx

import (
	"errors"
	"strings"
	"testing"
)

type innerJSON struct {
	Name string `json:"name"`
}

type baseJSON struct {
	RedirectURIs []string `json:"redirect_uris"`
	Hidden       string   `json:"-"`
}

type outerJSON struct {
	baseJSON
	Secret string               `json:"client_secret,omitempty"`
	Inner  *innerJSON           `json:"inner"`
	List   []innerJSON          `json:"list"`
	Map    map[string]innerJSON `json:"map"`
}

func TestStrictJSON(t *testing.T) {
	for name, tc := range map[string]struct {
		body    string
		strict  bool
		wantKey string // "" = accepted
	}{
		"plain":              {body: `{"redirect_uris":["https://a/cb"],"client_secret":"s","inner":{"name":"x"}}`},
		"unknown ignored":    {body: `{"redirect_uris":[],"x_extra":{"a":1}}`},
		"unknown refused":    {body: `{"redirect_uris":[],"x_extra":1}`, strict: true, wantKey: "x_extra"},
		"duplicate":          {body: `{"redirect_uris":["https://a/cb"],"redirect_uris":["https://evil/cb"]}`, wantKey: "redirect_uris"},
		"case variant":       {body: `{"redirect_uris":["https://a/cb"],"Redirect_URIs":["https://evil/cb"]}`, wantKey: "Redirect_URIs"},
		"case variant alone": {body: `{"REDIRECT_URIS":["https://evil/cb"]}`, wantKey: "REDIRECT_URIS"},
		"nested case":        {body: `{"inner":{"Name":"x"}}`, wantKey: "inner.Name"},
		"in list":            {body: `{"list":[{"name":"a"},{"name":"a","NAME":"b"}]}`, wantKey: "list[1].NAME"},
		"in map value":       {body: `{"map":{"k":{"name":"a","name":"b"}}}`, wantKey: "map.k.name"},
		"map keys duplicate": {body: `{"map":{"k":{},"k":{}}}`, wantKey: "map.k"},
		"unknown nested dup": {body: `{"x":{"a":1,"a":2}}`, wantKey: "x.a"},
		"hidden field":       {body: `{"Hidden":"x"}`},
		"map keys case ok":   {body: `{"map":{"k":{},"K":{}}}`},
	} {
		t.Run(name, func(t *testing.T) {
			var v outerJSON
			err := StrictJSON{DisallowUnknown: tc.strict}.Decode([]byte(tc.body), &v)
			var ke *JSONKeyError
			switch {
			case tc.wantKey == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantKey != "" && (!errors.As(err, &ke) || ke.Key != tc.wantKey):
				t.Fatalf("err = %v, want a key error naming %q", err, tc.wantKey)
			}
		})
	}
	var v outerJSON
	if err := (StrictJSON{}).Decode([]byte(`{"redirect_uris":["https://a/cb"]}`), &v); err != nil || v.RedirectURIs[0] != "https://a/cb" {
		t.Fatalf("decoded %+v, %v", v, err)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"a":1} {"b":2}`, `{"a":1}x`, `{"a":`} {
		if err := (StrictJSON{}).Decode([]byte(bad), &v); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	err := (StrictJSON{}).Decode([]byte(`{"Redirect_URIs":[]}`), &v)
	if err == nil || !strings.Contains(err.Error(), `"Redirect_URIs"`) || !strings.Contains(err.Error(), "redirect_uris") {
		t.Fatalf("message %v", err)
	}
}
