package web

import (
	"bytes"
	"html/template"
	"io/fs"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// templateIDRE finds the message ids the templates name: {{T "id" …}}.
var templateIDRE = regexp.MustCompile(`\bT "([a-z0-9_]+)"`)

// TestLocalesCoverTemplates: every message id a template uses is in every
// language file, and every language has exactly English's ids, so a
// missing translation fails here.
func TestLocalesCoverTemplates(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(embedded, "templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("templates: %v %v", files, err)
	}
	used := map[string][]string{}
	for _, f := range files {
		b, _ := fs.ReadFile(embedded, f)
		for _, m := range templateIDRE.FindAllSubmatch(b, -1) {
			used[string(m[1])] = append(used[string(m[1])], f)
		}
	}
	// Ids the pages compute (signup_error_<field>) or Go code chooses.
	for _, id := range []string{"signup_error_handle", "signup_error_name", "signup_error_email", "signup_error_password",
		"signup_error_handle_taken", "wait_now", "wait_seconds", "wait_minutes", "wait_hours"} {
		used[id] = append(used[id], "web/*.go")
	}
	if len(used) < 100 {
		t.Fatalf("only %d message ids found in the templates", len(used))
	}
	if len(messages.langs) < 2 || messages.langs[0] != "en" || !slices.Contains(messages.langs, "fr") {
		t.Fatalf("languages %v, want en first and fr", messages.langs)
	}
	for _, lang := range messages.langs {
		have := map[string]bool{}
		for _, id := range messages.ids[lang] {
			have[id] = true
		}
		for id, where := range used {
			if !have[id] {
				t.Errorf("%s.toml has no message %q (used in %s)", lang, id, strings.Join(where, ", "))
			}
		}
		for _, id := range messages.ids["en"] {
			if !have[id] {
				t.Errorf("%s.toml has no message %q of en.toml", lang, id)
			}
		}
		for id := range have {
			if !slices.Contains(messages.ids["en"], id) {
				t.Errorf("%s.toml has %q, which en.toml does not", lang, id)
			}
		}
	}
}

// TestLocalesTranslateGoTexts: the English texts Go code hands to pages
// (sharing choices) are messages, so Tx translates them.
func TestLocalesTranslateGoTexts(t *testing.T) {
	t.Parallel()
	var texts []string
	for _, c := range sharingChoices {
		texts = append(texts, c.Label, c.Explanation)
	}
	for _, f := range flashes {
		texts = append(texts, f)
	}
	for _, k := range activityKinds {
		texts = append(texts, k.Label)
	}
	for _, o := range append(append([]option(nil), lifetimes...), retentions...) {
		texts = append(texts, o.Label)
	}
	for _, l := range claimLabels {
		texts = append(texts, l)
	}
	for _, s := range texts {
		if _, ok := messages.english[s]; !ok {
			t.Errorf("no message says %q", s)
		}
	}
	fr := messages.funcs("fr")
	tx := fr["Tx"].(func(string) template.HTML)
	if got := tx("Nothing"); got != "Rien" {
		t.Errorf("Tx(Nothing) in French = %q", got)
	}
	// A text that is no message is shown as it is, escaped.
	if got := tx(`<b>"x"</b>`); got != "&lt;b&gt;&#34;x&#34;&lt;/b&gt;" {
		t.Errorf("Tx of an unknown text = %q", got)
	}
	// Data put into a message is escaped; the message's own markup stays.
	tf := fr["T"].(func(string, ...any) template.HTML)
	if got := tf("login_to_service", "Service", `<script>x</script>`); got != "pour continuer vers <strong>&lt;script&gt;x&lt;/script&gt;</strong>" {
		t.Errorf("T with markup in data = %q", got)
	}
	wait := fr["TryAgain"].(func(time.Duration) template.HTML)
	if got := wait(90 * time.Second); got != "Réessayez dans 2 minutes" {
		t.Errorf("TryAgain(90s) = %q", got)
	}
	if got := messages.funcs("en")["TryAgain"].(func(time.Duration) template.HTML)(time.Second); got != template.HTML(TryAgainIn(time.Second)) {
		t.Errorf("English TryAgain(1s) = %q, TryAgainIn says %q", got, TryAgainIn(time.Second))
	}
}

// TestPageLanguage: ui_locales (first supported wins), then
// Accept-Language, then English; <html lang> follows.
func TestPageLanguage(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Templates: tmpl}
	for _, tc := range []struct {
		name, query, accept, want string
	}{
		{"default", "", "", "en"},
		{"accept fr", "", "fr-CA,fr;q=0.9,en;q=0.5", "fr"},
		{"accept unknown", "", "de-DE,ja", "en"},
		{"accept garbage", "", ";;;=,,q", "en"},
		{"ui_locales first supported", "ui_locales=de+fr-FR+en", "en", "fr"},
		{"ui_locales before accept", "ui_locales=en", "fr", "en"},
		{"ui_locales unsupported, then accept", "ui_locales=xx+de", "fr", "fr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/login?"+tc.query, nil)
			if tc.accept != "" {
				r.Header.Set("Accept-Language", tc.accept)
			}
			w := httptest.NewRecorder()
			h.Render(w, r, 200, "login", map[string]any{})
			body := w.Body.String()
			if !strings.Contains(body, `<html lang="`+tc.want+`">`) {
				t.Fatalf("want lang %s, got page:\n%.300s", tc.want, body)
			}
			if got := w.Header().Get("Content-Language"); got != tc.want {
				t.Errorf("Content-Language %q, want %q", got, tc.want)
			}
			heading := map[string]string{"en": "<h1>Sign in</h1>", "fr": "<h1>Connexion</h1>"}[tc.want]
			if !strings.Contains(body, heading) {
				t.Errorf("page lacks %s", heading)
			}
		})
	}
}

// TestEveryPageRenders: every page renders in every language with no data
// at all (what a page may be given least), so a template error shows here.
func TestEveryPageRenders(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range messages.langs {
		for _, p := range pages {
			var buf bytes.Buffer
			data := map[string]any{"Lang": lang, "FieldErrors": map[string]*fieldError{}, "FirstInvalid": ""}
			if err := tmpl[templateKey(lang, p)].ExecuteTemplate(&buf, "base", data); err != nil {
				// Pages that need their data fail on a nil field; that
				// is theirs to give, not a template error.
				if !strings.Contains(err.Error(), "nil") && !strings.Contains(err.Error(), "invalid value") {
					t.Errorf("%s/%s: %v", lang, p, err)
				}
			}
		}
	}
}

// TestTemplatesHaveNoUntranslatedText: outside template actions, tags,
// scripts and styles, no template holds words of its own (the product's
// name and "UTC" aside): every text a person reads comes from the
// language files.
func TestTemplatesHaveNoUntranslatedText(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(embedded, "templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("templates: %v %v", files, err)
	}
	strip := []*regexp.Regexp{
		regexp.MustCompile(`(?s)\{\{.*?\}\}`),
		regexp.MustCompile(`(?s)<script.*?</script>`),
		regexp.MustCompile(`(?s)<style.*?</style>`),
		regexp.MustCompile(`(?s)<[^>]*>`),
		regexp.MustCompile(`Commons ID|\bUTC\b`),
	}
	words := regexp.MustCompile(`[A-Za-z]{2,}`)
	for _, f := range files {
		b, _ := fs.ReadFile(embedded, f)
		for _, re := range strip {
			b = re.ReplaceAll(b, []byte(" "))
		}
		if w := words.FindAll(b, 5); len(w) > 0 {
			t.Errorf("%s shows text that is not a message: %q", f, w)
		}
	}
}
