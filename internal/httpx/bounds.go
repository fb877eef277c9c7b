package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Limit is what one family of endpoints accepts from a request before any
// handler sees it.
type Limit struct {
	// Body is the largest request body in bytes. Bodies up to this size are
	// read here, so an oversized one is refused with 413 whether or not it
	// declares its length, except when Multipart is set: then the body is
	// streamed to the handler through a reader that stops at Body bytes.
	Body int64
	// Query is the largest raw query string in bytes; longer → 414.
	Query int
	// Multipart accepts multipart/form-data bodies. Everywhere else they are
	// refused: Go's Request.FormValue, PostFormValue and ParseMultipartForm
	// (which fosite calls) parse them implicitly and spill file parts to
	// temporary files that outlive a request copied with WithContext.
	Multipart bool
	// Unique refuses a parameter given more than once, in the query and an
	// application/x-www-form-urlencoded body taken together (RFC 6749
	// §3.1), except the names in Repeatable.
	Unique     bool
	Repeatable []string
	// JSON answers refusals as an OAuth error object ({"error":
	// "invalid_request", ...}); else as a short text.
	JSON bool
}

// Bound is middleware that enforces, for every request, the Limit that
// pick chooses for it (usually by path).
func Bound(pick func(r *http.Request) Limit) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lim := pick(r)
			if lim.Query > 0 && len(r.URL.RawQuery) > lim.Query {
				refuseInput(w, lim, http.StatusRequestURITooLong, "the query string is longer than "+formatBytes(int64(lim.Query)))
				return
			}
			if isMultipart(r.Header.Get("Content-Type")) && !lim.Multipart {
				status := http.StatusUnsupportedMediaType
				if lim.JSON {
					// OAuth endpoints answer every malformed request with
					// invalid_request (RFC 6749 §5.2).
					status = http.StatusBadRequest
				}
				refuseInput(w, lim, status, "multipart bodies are not accepted here; send application/x-www-form-urlencoded")
				return
			}
			if r.ContentLength > lim.Body {
				refuseInput(w, lim, http.StatusRequestEntityTooLarge, "the request body is larger than "+formatBytes(lim.Body))
				return
			}
			hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
			if hasBody && lim.Multipart {
				r.Body = http.MaxBytesReader(w, r.Body, lim.Body)
				next.ServeHTTP(w, r)
				return
			}
			var body []byte
			if hasBody {
				b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim.Body))
				if err != nil {
					var tooLarge *http.MaxBytesError
					if errors.As(err, &tooLarge) {
						refuseInput(w, lim, http.StatusRequestEntityTooLarge, "the request body is larger than "+formatBytes(lim.Body))
					} else {
						refuseInput(w, lim, http.StatusBadRequest, "the request body could not be read")
					}
					return
				}
				body = b
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.ContentLength = int64(len(b))
			}
			if lim.Unique {
				seen := url.Values{}
				err := DecodeForm(seen, r.URL.RawQuery, lim.Repeatable)
				if err == nil && isURLEncoded(r.Header.Get("Content-Type")) {
					err = DecodeForm(seen, string(body), lim.Repeatable)
				}
				if err != nil {
					refuseInput(w, lim, http.StatusBadRequest, err.Error())
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// DuplicateParamError reports a parameter given more than once.
type DuplicateParamError struct{ Name string }

func (e *DuplicateParamError) Error() string {
	return "the parameter " + quoteParam(e.Name) + " is given more than once"
}

// ErrMalformedForm reports a form that is not valid
// application/x-www-form-urlencoded.
var ErrMalformedForm = errors.New("the parameters are not valid application/x-www-form-urlencoded")

// DecodeForm decodes s, an application/x-www-form-urlencoded string (a query
// or a form body), into dst, as url.ParseQuery does, and refuses a name
// that is already in dst or occurs twice in s, unless it is one of
// repeatable. Call it on the query and then on the body with the same dst
// to hold them to one set. Every name counts, with or without a value: the
// duplicate is refused rather than guessing which one the sender meant.
func DecodeForm(dst url.Values, s string, repeatable []string) error {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.Contains(pair, ";") {
			return ErrMalformedForm
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return ErrMalformedForm
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return ErrMalformedForm
		}
		if _, dup := dst[k]; dup && !slices.Contains(repeatable, k) {
			return &DuplicateParamError{Name: k}
		}
		dst[k] = append(dst[k], v)
	}
	return nil
}

// quoteParam quotes a parameter name for an error description, which RFC
// 6749 §5.2 limits to printable ASCII without '"' and '\'; other characters
// become '?' and long names are cut.
func quoteParam(name string) string {
	const max = 40
	var b strings.Builder
	b.WriteByte('\'')
	for i, c := range []byte(name) {
		if i == max {
			b.WriteString("...")
			break
		}
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '\'' {
			c = '?'
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}

func contentMediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// isMultipart reports a multipart content type, even a malformed one.
func isMultipart(ct string) bool { return strings.HasPrefix(contentMediaType(ct), "multipart/") }

func isURLEncoded(ct string) bool { return contentMediaType(ct) == "application/x-www-form-urlencoded" }

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// refuseInput answers a request the limits turn away, before any handler read
// it.
func refuseInput(w http.ResponseWriter, lim Limit, status int, msg string) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	if lim.JSON {
		hd.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": msg})
		return
	}
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+": "+msg+".\n")
}
