package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultOutboxFrom is the sender written into outbox files when none is set.
const DefaultOutboxFrom = "Commons ID <no-reply@localhost>"

// Outbox is the Sender of a cloud without SMTP: every message becomes one
// .eml file (mode 0600) in a folder of mode 0700, and one info line in the
// log names the file, so that a person running the cloud on their own
// machine can open the mail and follow its link. The file holds the whole
// message, links included; the log line does not.
type Outbox struct {
	dir string
	// From is the sender written into the files.
	From string
	// Log receives the line naming each file.
	Log *slog.Logger
	// Now stamps the Date header and the file name.
	Now func() time.Time
}

var _ Sender = (*Outbox)(nil)

// NewOutbox prepares the folder dir (created with mode 0700; an existing
// folder readable by others is tightened to 0700).
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("mail: outbox folder is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mail: outbox folder: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("mail: outbox folder: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("mail: outbox folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mail: outbox %s is not a folder", abs)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(abs, 0o700); err != nil {
			return nil, fmt.Errorf("mail: outbox folder: %w", err)
		}
	}
	return &Outbox{dir: abs, From: DefaultOutboxFrom, Log: slog.Default(), Now: time.Now}, nil
}

// Dir is the folder the messages are written to.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m as one file. The error wraps ErrInvalidMessage when m breaks
// a bound; any other error is a failure to write the file.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return err
	}
	from, err := parseFrom(o.From)
	if err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	t := now().UTC()
	// 8bit, not quoted-printable: the file is meant to be read, and a link
	// must be found in it as it is.
	msg, err := build(m, from, to, t, gomail.NoEncoding)
	if err != nil {
		return invalid("%v", err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	kind := "message"
	if m.Kind != "" {
		kind = string(m.Kind)
	}
	name := fmt.Sprintf("%s-%s-%s.eml", t.Format("20060102T150405Z"), kind, hex.EncodeToString(rnd[:]))
	path := filepath.Join(o.dir, name)
	if err := writeExclusive(path, buf.Bytes()); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	log.InfoContext(ctx, "mail written to the outbox (no SMTP server is configured)",
		"kind", string(m.Kind), "to", maskAddresses(to), "subject", m.Subject, "file", path)
	return nil
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func validKind(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// maskAddresses shows enough of each recipient to tell messages apart in
// the log (the first letter and the domain) without writing the address
// itself: addresses are personal data, and this line is at info level.
func maskAddresses(to []*mail.Address) string {
	parts := make([]string, len(to))
	for i, a := range to {
		parts[i] = maskAddress(a.Address)
	}
	return strings.Join(parts, ", ")
}

func maskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "…"
	}
	local, domain := addr[:at], addr[at+1:]
	r := []rune(local)
	return string(r[0]) + "…@" + domain
}
