package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net"
	"net/url"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
)

// Kind names a message template.
type Kind string

// The messages this cloud sends.
const (
	KindVerifyEmail     Kind = "verify-email"       // VerifyEmail
	KindPasswordReset   Kind = "password-reset"     // PasswordReset
	KindPasswordChanged Kind = "password-changed"   // PasswordChanged
	KindLockout         Kind = "lockout"            // Lockout
	KindNewDeviceSignIn Kind = "new-device-sign-in" // NewDeviceSignIn
	// KindRecoveryKitSignIn: RecoveryKitSignIn.
	KindRecoveryKitSignIn Kind = "recovery-kit-sign-in"
)

// Kinds lists every template, in a stable order.
func Kinds() []Kind {
	return []Kind{KindVerifyEmail, KindPasswordReset, KindPasswordChanged, KindLockout, KindNewDeviceSignIn, KindRecoveryKitSignIn}
}

// Common is what every message says about its recipient and sender.
type Common struct {
	// To is the recipient's address.
	To string
	// Cloud is the name of this cloud as people know it ("Example
	// Commons"); Issuer its address (https://id.example.org). One of them
	// is required; the other is shown when given.
	Cloud  string
	Issuer string
	// Handle is the account's handle.
	Handle string
}

// Request describes where an event came from: when, from which address,
// and a short summary of the browser or device (from its User-Agent). All
// optional; shown when given.
type Request struct {
	At     time.Time
	IP     string
	Device string
}

// VerifyEmail asks the person to confirm their address (at sign-up and on
// every change). Link confirms it; ValidFor says how long it works.
type VerifyEmail struct {
	Common
	Link     string
	ValidFor time.Duration
}

// PasswordReset carries a single-use link to choose a new password.
// Request is the request that asked for it.
type PasswordReset struct {
	Common
	Link     string
	ValidFor time.Duration
	Request  Request
}

// PasswordChanged tells the person their password was changed (or reset).
// Link (optional) is where to act if it was not them.
type PasswordChanged struct {
	Common
	Request Request
	Link    string
}

// Lockout tells the person that sign-in to their account is being slowed
// down or paused after Failures wrong attempts; Until is when it lifts (zero:
// not said). Request is the last failed attempt. Link (optional) is where
// to reset the password.
type Lockout struct {
	Common
	Failures int
	Until    time.Time
	Request  Request
	Link     string
}

// NewDeviceSignIn tells the person that their account was signed in to from
// a device not seen before. Link (optional) is the account's activity page.
type NewDeviceSignIn struct {
	Common
	Request Request
	Link    string
}

// RecoveryKitSignIn tells the person that their account was signed in to
// with the password and the recovery kit in place of the second factor.
// Link (optional) is the account's security page.
type RecoveryKitSignIn struct {
	Common
	Request Request
	Link    string
}

//go:embed templates
var templateFS embed.FS

type kindTemplates struct {
	text *texttemplate.Template // defines "subject" and "text"
	html *htmltemplate.Template // defines "html"
}

var templates = mustParseTemplates()

var funcs = map[string]any{
	"when":     formatTime,
	"duration": formatDuration,
}

func mustParseTemplates() map[Kind]kindTemplates {
	set := make(map[Kind]kindTemplates)
	for _, k := range Kinds() {
		tt := texttemplate.Must(texttemplate.New(string(k)).Funcs(funcs).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.txt", "templates/"+string(k)+".txt"))
		ht := htmltemplate.Must(htmltemplate.New(string(k)).Funcs(funcs).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html", "templates/"+string(k)+".html"))
		for _, name := range []string{"subject", "text"} {
			if tt.Lookup(name) == nil {
				panic(fmt.Sprintf("mail: template %s.txt defines no %q", k, name))
			}
		}
		if ht.Lookup("html") == nil {
			panic(fmt.Sprintf("mail: template %s.html defines no \"html\"", k))
		}
		set[k] = kindTemplates{text: tt, html: ht}
	}
	return set
}

// Render fills the template of kind with data, which must be the kind's
// type (VerifyEmail for KindVerifyEmail, …), as a value or a pointer. Free
// text (cloud name, handle, IP, device) is cut to one short line, so that a
// hostile User-Agent cannot write paragraphs into a mail; the HTML part
// escapes everything; links must be absolute http(s) URLs.
func Render(kind Kind, data any) (Message, error) {
	t, ok := templates[kind]
	if !ok {
		return Message{}, fmt.Errorf("mail: no template %q", kind)
	}
	view, c, err := prepare(kind, data)
	if err != nil {
		return Message{}, fmt.Errorf("mail: render %s: %w", kind, err)
	}
	var subject, text, html bytes.Buffer
	if err := t.text.ExecuteTemplate(&subject, "subject", view); err != nil {
		return Message{}, fmt.Errorf("mail: render %s subject: %w", kind, err)
	}
	if err := t.text.ExecuteTemplate(&text, "text", view); err != nil {
		return Message{}, fmt.Errorf("mail: render %s text: %w", kind, err)
	}
	if err := t.html.ExecuteTemplate(&html, "html", view); err != nil {
		return Message{}, fmt.Errorf("mail: render %s html: %w", kind, err)
	}
	m := Message{
		To:      []string{c.To},
		Subject: oneLine(subject.String(), MaxSubjectBytes),
		Text:    tidyText(text.String()),
		HTML:    html.String(),
		Kind:    kind,
	}
	if _, err := m.validate(); err != nil {
		return Message{}, fmt.Errorf("mail: render %s: %w", kind, err)
	}
	return m, nil
}

// view is what the templates see: the data, cleaned, plus the sender's
// name.
type view struct {
	Data any
	Common
	Sender string // Cloud, or the Issuer's host
}

func prepare(kind Kind, data any) (view, Common, error) {
	var (
		c        *Common
		link     *string
		req      *Request
		needLink bool
		out      any
	)
	switch kind {
	case KindVerifyEmail:
		d, err := as[VerifyEmail](data)
		if err != nil {
			return view{}, Common{}, err
		}
		if d.ValidFor <= 0 {
			return view{}, Common{}, errors.New("field ValidFor is not set")
		}
		c, link, needLink, out = &d.Common, &d.Link, true, &d
	case KindPasswordReset:
		d, err := as[PasswordReset](data)
		if err != nil {
			return view{}, Common{}, err
		}
		if d.ValidFor <= 0 {
			return view{}, Common{}, errors.New("field ValidFor is not set")
		}
		c, link, req, needLink, out = &d.Common, &d.Link, &d.Request, true, &d
	case KindPasswordChanged:
		d, err := as[PasswordChanged](data)
		if err != nil {
			return view{}, Common{}, err
		}
		c, link, req, out = &d.Common, &d.Link, &d.Request, &d
	case KindLockout:
		d, err := as[Lockout](data)
		if err != nil {
			return view{}, Common{}, err
		}
		if d.Failures < 0 {
			return view{}, Common{}, errors.New("field Failures is negative")
		}
		c, link, req, out = &d.Common, &d.Link, &d.Request, &d
	case KindNewDeviceSignIn:
		d, err := as[NewDeviceSignIn](data)
		if err != nil {
			return view{}, Common{}, err
		}
		c, link, req, out = &d.Common, &d.Link, &d.Request, &d
	case KindRecoveryKitSignIn:
		d, err := as[RecoveryKitSignIn](data)
		if err != nil {
			return view{}, Common{}, err
		}
		c, link, req, out = &d.Common, &d.Link, &d.Request, &d
	default:
		return view{}, Common{}, fmt.Errorf("no template %q", kind)
	}

	if _, err := parseAddress(c.To); err != nil {
		return view{}, Common{}, fmt.Errorf("recipient: %w", err)
	}
	c.Cloud = oneLine(c.Cloud, 80)
	c.Handle = oneLine(c.Handle, 64)
	sender := c.Cloud
	if c.Issuer != "" {
		iss, err := checkLink(c.Issuer)
		if err != nil {
			return view{}, Common{}, fmt.Errorf("field Issuer: %w", err)
		}
		c.Issuer = iss
		if sender == "" {
			u, _ := url.Parse(iss)
			sender = u.Host
		}
	}
	if sender == "" {
		return view{}, Common{}, errors.New("neither field Cloud nor Issuer is set")
	}
	if *link == "" && needLink {
		return view{}, Common{}, errors.New("field Link is not set")
	}
	if *link != "" {
		l, err := checkLink(*link)
		if err != nil {
			return view{}, Common{}, fmt.Errorf("field Link: %w", err)
		}
		*link = l
	}
	if req != nil {
		req.IP = cleanIP(req.IP)
		req.Device = cleanDevice(req.Device)
		if !req.At.IsZero() {
			req.At = req.At.UTC()
		}
	}
	return view{Data: out, Common: *c, Sender: sender}, *c, nil
}

// as accepts T or *T (a copy is returned, so cleaning does not touch the
// caller's value).
func as[T any](data any) (T, error) {
	var zero T
	switch d := data.(type) {
	case T:
		return d, nil
	case *T:
		if d == nil {
			return zero, fmt.Errorf("data is a nil %T", d)
		}
		return *d, nil
	}
	return zero, fmt.Errorf("data is a %T, want %T", data, zero)
}

const maxLinkBytes = 2048

// checkLink accepts an absolute http or https URL without spaces or
// control characters (it is written as is into the text part).
func checkLink(s string) (string, error) {
	if len(s) > maxLinkBytes {
		return "", fmt.Errorf("longer than %d bytes", maxLinkBytes)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", errors.New("holds a space or control character")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", errors.New("not an absolute http(s) URL")
	}
	return u.String(), nil
}

// oneLine collapses every run of spaces and control characters to one
// space and cuts the result to at most max bytes (on a rune boundary, with
// an ellipsis).
func oneLine(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == unicode.ReplacementChar ||
			unicode.Is(unicode.Cf, r) { // bidi overrides and other invisible format characters
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	cut := max - len("…")
	for cut > 0 && !isRuneStart(out[cut]) {
		cut--
	}
	return out[:cut] + "…"
}

// cleanIP gives an address in its canonical form; anything else (a masked
// address such as 203.0.113.0/24) keeps only the characters of addresses.
func cleanIP(s string) string {
	s = strings.TrimSpace(s)
	if ip := net.ParseIP(s); ip != nil {
		return ip.String()
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '.' || r == ':' || r == '/' || r == '*' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return -1
	}, s)
	return oneLine(s, 64)
}

// cleanDevice keeps a device summary to one short line of words, without
// anything a mail client would turn into a link: the summary comes from a
// User-Agent, which whoever signs in chooses.
func cleanDevice(s string) string {
	words := strings.Fields(oneLine(s, 4*maxDeviceBytes))
	kept := words[:0]
	for _, w := range words {
		lw := strings.ToLower(w)
		if strings.Contains(lw, "://") || strings.Contains(lw, "@") || strings.Contains(lw, "\\") || hostLike.MatchString(lw) {
			continue
		}
		kept = append(kept, w)
	}
	return oneLine(strings.Join(kept, " "), maxDeviceBytes)
}

const maxDeviceBytes = 120

// hostLike matches a word with a dot before letters ("evil.example",
// "www.x"), which mail clients may turn into a link; version numbers
// ("Firefox/140.0") do not match.
var hostLike = regexp.MustCompile(`\.\p{L}{2,}`)

func isRuneStart(b byte) bool { return b&0xc0 != 0x80 }

// tidyText trims trailing spaces from each line and folds runs of blank
// lines left by template actions.
func tidyText(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	out := make([]string, 0, len(lines))
	blank := 0
	for _, l := range lines {
		if l != "-- " { // the signature separator keeps its space
			l = strings.TrimRight(l, " \t")
		}
		if l == "" {
			blank++
			if blank > 1 || len(out) == 0 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("Monday 2 January 2006, 15:04 UTC")
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= 2*time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d == time.Hour:
		return "1 hour"
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", (d+30*time.Second)/time.Minute)
	case d >= time.Minute:
		return "1 minute"
	}
	return fmt.Sprintf("%d seconds", d/time.Second)
}
