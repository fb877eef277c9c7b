package web

// Translations of the pages.
//
// Every string a person reads on a page is a message in web/locales/<lang>.toml
// (embedded), looked up with go-i18n. The templates call
//
//	{{T "message_id"}}                    a message
//	{{T "message_id" "Name" .Name}}       a message with data ({{.Name}} in it)
//	{{T "message_id" "Count" .N}}         a message with plural forms (one/other)
//	{{Tx .Message}}                       an English text chosen by Go code
//	                                      (error titles and messages), translated
//	                                      when it is one of the messages, else as is
//
// Message texts are trusted (embedded, reviewed like code) and may hold a
// little markup; the data put into them is escaped first.
//
// Rules:
//   - English (en.toml) is the source and the fallback: a message missing in
//     another language shows in English. A test fails when a message id used
//     in a template, or any id of en.toml, is missing in a language file.
//   - The language of a page is, in order: the OpenID Connect ui_locales of
//     the authorization request the page belongs to (space-separated tags, the
//     first supported one wins; found through the challenge the sign-in
//     carries in return_to or challenge), a ui_locales parameter of the
//     request itself, the Accept-Language header, then English. <html lang>
//     says which one was chosen.
//   - Each language has its own parsed template set, made at start-up, so
//     rendering never parses.

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var localeFiles embed.FS

// DefaultLanguage is the language of the pages when nothing else is chosen.
const DefaultLanguage = "en"

// catalog is every language's messages.
type catalog struct {
	bundle  *i18n.Bundle
	langs   []string // base languages, DefaultLanguage first
	tags    []language.Tag
	matcher language.Matcher
	// english maps an English message text to its id (Tx).
	english map[string]string
	ids     map[string][]string // language → message ids
}

var messages = mustCatalog()

func mustCatalog() *catalog {
	c, err := loadCatalog(localeFiles)
	if err != nil {
		panic(err)
	}
	return c
}

func loadCatalog(fsys fs.FS) (*catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &catalog{bundle: b, english: map[string]string{}, ids: map[string][]string{}}
	names, err := fs.Glob(fsys, "locales/*.toml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, n := range names {
		buf, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		mf, err := b.ParseMessageFileBytes(buf, n)
		if err != nil {
			return nil, fmt.Errorf("locale file %s: %w", n, err)
		}
		lang := strings.TrimSuffix(path.Base(n), ".toml")
		for _, m := range mf.Messages {
			c.ids[lang] = append(c.ids[lang], m.ID)
			if lang == DefaultLanguage && m.Other != "" && !strings.Contains(m.Other, "{{") {
				// Texts said by two messages: the smaller id, every time.
				if prev, ok := c.english[m.Other]; !ok || m.ID < prev {
					c.english[m.Other] = m.ID
				}
			}
		}
		if lang == DefaultLanguage {
			c.langs = append([]string{lang}, c.langs...)
			c.tags = append([]language.Tag{mf.Tag}, c.tags...)
		} else {
			c.langs = append(c.langs, lang)
			c.tags = append(c.tags, mf.Tag)
		}
	}
	if len(c.langs) == 0 || c.langs[0] != DefaultLanguage {
		return nil, fmt.Errorf("locale file %s.toml is missing", DefaultLanguage)
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// Languages lists the languages the pages are translated into, English first.
func Languages() []string { return append([]string(nil), messages.langs...) }

// supported returns the base language of tag when the pages have it.
func (c *catalog) supported(tag string) (string, bool) {
	t, err := language.Parse(strings.TrimSpace(tag))
	if err != nil {
		return "", false
	}
	base, _ := t.Base()
	for _, l := range c.langs {
		if base.String() == l {
			return l, true
		}
	}
	return "", false
}

// fromUILocales returns the first supported language of an OpenID Connect
// ui_locales value (space-separated BCP 47 tags, in order of preference).
func (c *catalog) fromUILocales(v string) (string, bool) {
	for i, f := range strings.Fields(v) {
		if i >= 10 {
			break
		}
		if l, ok := c.supported(f); ok {
			return l, true
		}
	}
	return "", false
}

// fromAcceptLanguage returns the best supported language of an
// Accept-Language header.
func (c *catalog) fromAcceptLanguage(v string) (string, bool) {
	if v == "" || len(v) > 1024 {
		return "", false
	}
	tags, _, err := language.ParseAcceptLanguage(v)
	if err != nil || len(tags) == 0 {
		return "", false
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return "", false
	}
	return c.langs[i], true
}

// funcs are the template functions of one language. A message is trusted
// text (it may hold a little markup, <strong> or <code>); the data put into
// it is escaped first, so what a person typed never becomes markup.
func (c *catalog) funcs(lang string) map[string]any {
	loc := i18n.NewLocalizer(c.bundle, lang, DefaultLanguage)
	t := func(id string, args ...any) template.HTML {
		lc := &i18n.LocalizeConfig{MessageID: id}
		if len(args) > 0 {
			data := map[string]any{}
			for i := 0; i+1 < len(args); i += 2 {
				k, _ := args[i].(string)
				data[k] = template.HTMLEscapeString(fmt.Sprint(args[i+1]))
				if k == "Count" {
					lc.PluralCount = args[i+1]
				}
			}
			lc.TemplateData = data
		}
		s, err := loc.Localize(lc)
		if s == "" && err != nil {
			return template.HTML(template.HTMLEscapeString(id))
		}
		return template.HTML(s)
	}
	return map[string]any{
		"T": t,
		// TryAgain says when to try again (the 429 page), rounded up as
		// TryAgainIn does.
		"TryAgain": func(wait time.Duration) template.HTML {
			switch {
			case wait <= 0:
				return t("wait_now")
			case wait < time.Minute:
				return t("wait_seconds", "Count", int((wait+time.Second-1)/time.Second))
			case wait < time.Hour:
				return t("wait_minutes", "Count", int((wait+time.Minute-1)/time.Minute))
			default:
				return t("wait_hours", "Count", int((wait+time.Hour-1)/time.Hour))
			}
		},
		"Tx": func(text string) template.HTML {
			if id, ok := c.english[text]; ok {
				return t(id)
			}
			return template.HTML(template.HTMLEscapeString(text))
		},
	}
}
