package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
)

// Bounds of one message. Mail sent by this cloud goes to one person at a
// time; the bounds keep a mistake (or a hostile value) from turning the
// sender into a mass mailer or a header forger.
const (
	MaxRecipients   = 5
	MaxAddressBytes = 254 // RFC 5321 path limit
	MaxSubjectBytes = 200
	MaxBodyBytes    = 128 << 10 // text and HTML together
)

// Message is one mail: recipients, a one-line subject, a plain-text body and
// an optional HTML alternative. Render builds one from a template.
type Message struct {
	To      []string
	Subject string
	Text    string
	HTML    string
	// Kind names the template the message came from (for logs and outbox
	// file names; lower-case letters, digits and dashes); optional.
	Kind Kind
}

// Errors of Send, tested with errors.Is. Every error Send returns wraps
// exactly one of them.
var (
	// ErrInvalidMessage: the message breaks a bound or holds a line break
	// in a header; nothing was sent.
	ErrInvalidMessage = errors.New("mail: invalid message")
	// ErrRecipientRefused: the server refused a recipient (RCPT TO); the
	// address is wrong or the mailbox is unavailable. Temporary tells a
	// 4xx refusal from a 5xx one.
	ErrRecipientRefused = errors.New("mail: recipient refused")
	// ErrMessageRefused: the server refused the sender or the message
	// itself (MAIL FROM, DATA).
	ErrMessageRefused = errors.New("mail: message refused")
	// ErrUnreachable: the server could not be reached or broke off
	// (connection refused, timeout, lost connection). Try again later.
	ErrUnreachable = errors.New("mail: server unreachable")
	// ErrTLS: the TLS handshake failed or the server offers no STARTTLS;
	// the server's certificate is not trusted (see ca_file).
	ErrTLS = errors.New("mail: TLS with the server failed")
	// ErrAuth: the server refused the user name and password, or offers no
	// mechanism this cloud may use. A configuration problem.
	ErrAuth = errors.New("mail: authentication refused")
)

// sendError is what Send returns: the class (one of the Err values), whether
// a later try may succeed, and the server's reply code, without the
// recipient's address (errors are logged; addresses are personal data).
type sendError struct {
	class     error
	temporary bool
	detail    string
	cause     error
}

func (e *sendError) Error() string {
	if e.detail == "" {
		return e.class.Error()
	}
	return e.class.Error() + ": " + e.detail
}

func (e *sendError) Is(target error) bool { return target == e.class }

// Unwrap gives the cause (for errors.As on net and TLS errors); its text
// may name addresses, so Error does not include it.
func (e *sendError) Unwrap() error { return e.cause }

// Temporary reports whether a send that failed with err may succeed when
// tried again later: an unreachable server, or a 4xx reply.
func Temporary(err error) bool {
	var se *sendError
	if errors.As(err, &se) {
		return se.temporary
	}
	return false
}

func invalid(format string, args ...any) error {
	return &sendError{class: ErrInvalidMessage, detail: fmt.Sprintf(format, args...)}
}

// validate checks the bounds and refuses header injection. The returned
// addresses are parsed (one per recipient).
func (m Message) validate() ([]*mail.Address, error) {
	if len(m.To) == 0 {
		return nil, invalid("no recipient")
	}
	if len(m.To) > MaxRecipients {
		return nil, invalid("%d recipients, at most %d", len(m.To), MaxRecipients)
	}
	to := make([]*mail.Address, 0, len(m.To))
	for i, raw := range m.To {
		a, err := parseAddress(raw)
		if err != nil {
			return nil, invalid("recipient %d: %v", i+1, err)
		}
		to = append(to, a)
	}
	if m.Subject == "" {
		return nil, invalid("empty subject")
	}
	if len(m.Subject) > MaxSubjectBytes {
		return nil, invalid("subject of %d bytes, at most %d", len(m.Subject), MaxSubjectBytes)
	}
	if hasControl(m.Subject) {
		return nil, invalid("subject holds a line break or control character")
	}
	if !utf8.ValidString(m.Subject) || !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return nil, invalid("not valid UTF-8")
	}
	if strings.TrimSpace(m.Text) == "" {
		return nil, invalid("empty text body")
	}
	if n := len(m.Text) + len(m.HTML); n > MaxBodyBytes {
		return nil, invalid("body of %d bytes, at most %d", n, MaxBodyBytes)
	}
	if strings.ContainsRune(m.Text, 0) || strings.ContainsRune(m.HTML, 0) {
		return nil, invalid("body holds a NUL byte")
	}
	if m.Kind != "" && !validKind(string(m.Kind)) {
		return nil, invalid("kind is not a name of lower-case letters, digits and dashes")
	}
	return to, nil
}

// parseAddress reads one address ("a@b" or "Name <a@b>"), refusing line
// breaks before the parser sees them.
func parseAddress(raw string) (*mail.Address, error) {
	if raw == "" {
		return nil, errors.New("empty address")
	}
	if len(raw) > MaxAddressBytes+200 {
		return nil, errors.New("address too long")
	}
	if hasControl(raw) {
		return nil, errors.New("address holds a line break or control character")
	}
	a, err := mail.ParseAddress(raw)
	if err != nil {
		return nil, errors.New("not an email address")
	}
	if len(a.Address) > MaxAddressBytes {
		return nil, fmt.Errorf("address longer than %d bytes", MaxAddressBytes)
	}
	if hasControl(a.Name) {
		return nil, errors.New("address name holds a control character")
	}
	return a, nil
}

func parseFrom(raw string) (*mail.Address, error) {
	a, err := parseAddress(raw)
	if err != nil {
		return nil, fmt.Errorf("sender %w", err)
	}
	return a, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// build turns a validated message into a MIME message: text/plain, with
// text/html as alternative when present.
func build(m Message, from *mail.Address, to []*mail.Address, now time.Time, enc gomail.Encoding) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithEncoding(enc), gomail.WithCharset(gomail.CharsetUTF8), gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	msg.ToMailAddress(to...)
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(messageID(from.Address))
	// RFC 3834: automatic mail, so that vacation responders stay quiet.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

func messageID(from string) string {
	domain := "localhost"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@" + domain
}

// Sender delivers a message. Implementations: *SMTP (a mail server) and
// *Outbox (files in the data folder, for a cloud without SMTP).
type Sender interface {
	Send(ctx context.Context, m Message) error
}
