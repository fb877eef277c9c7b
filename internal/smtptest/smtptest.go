// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) in
// the test process, on 127.0.0.1, and records what it receives.
//
// One Server listens twice: Addr speaks plain SMTP with STARTTLS (port-587
// style) and TLSAddr speaks TLS from the first byte (port-465 style). Both
// present a self-signed certificate for 127.0.0.1 and localhost, generated at
// start; CAFile is that certificate as PEM, to be trusted by the client
// (smtp://…?ca_file=). AUTH PLAIN and LOGIN are offered after TLS, checked
// against Options.Users. Messages are kept in order of arrival; Wait blocks
// until a message arrives, for flows where mail is sent in the background.
package smtptest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server. The zero value accepts any sender and
// recipient, with or without authentication.
type Options struct {
	// Users are the accepted user names and passwords. When set, AUTH is
	// required before MAIL FROM.
	Users map[string]string
	// RejectRecipient, when it returns true for an address, makes RCPT
	// TO fail with 550 5.1.1.
	RejectRecipient func(addr string) bool
	// RejectSender, when it returns true for an address, makes MAIL FROM
	// fail with 550 5.7.1.
	RejectSender func(addr string) bool
	// AllowInsecureAuth offers AUTH on connections without TLS.
	AllowInsecureAuth bool
	// NoSTARTTLS hides STARTTLS on Addr.
	NoSTARTTLS bool
	// MaxMessageBytes bounds a message (default 1 MiB).
	MaxMessageBytes int64
}

// Message is one message as the server received it.
type Message struct {
	From string
	To   []string
	// Data is the message as transferred (headers and body).
	Data []byte
	// User is the authenticated user name ("" without AUTH).
	User string
	// TLS reports whether the transfer was encrypted.
	TLS bool
}

// Server is a running SMTP server.
type Server struct {
	// Addr is host:port of the STARTTLS listener, TLSAddr of the implicit
	// TLS listener.
	Addr, TLSAddr string
	// CertPEM is the server's self-signed certificate; CAFile a file
	// holding it.
	CertPEM []byte
	CAFile  string
	// TLSConfig trusts the server's certificate.
	TLSConfig *tls.Config

	opts   Options
	plain  *smtp.Server
	tlsSrv *smtp.Server

	mu       sync.Mutex
	messages []Message
	authFail int
	arrived  chan struct{}
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func start(dir string, opts Options) (*Server, error) {
	certPEM, cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "smtptest-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 1 << 20
	}
	s := &Server{
		CertPEM:   certPEM,
		CAFile:    caFile,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		opts:      opts,
		arrived:   make(chan struct{}, 1),
	}
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	newServer := func() *smtp.Server {
		srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
			return &session{s: s, conn: c}, nil
		}))
		srv.Domain = "localhost"
		srv.MaxMessageBytes = opts.MaxMessageBytes
		srv.MaxRecipients = 50
		srv.ReadTimeout = 30 * time.Second
		srv.WriteTimeout = 30 * time.Second
		srv.AllowInsecureAuth = opts.AllowInsecureAuth
		srv.ErrorLog = log.New(io.Discard, "", 0)
		return srv
	}
	s.plain = newServer()
	if !opts.NoSTARTTLS {
		s.plain.TLSConfig = serverTLS
	}
	s.tlsSrv = newServer()
	s.tlsSrv.TLSConfig = serverTLS

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	s.Addr, s.TLSAddr = l.Addr().String(), lt.Addr().String()
	go s.plain.Serve(l)                               //nolint:errcheck // ends with Close
	go s.tlsSrv.Serve(tls.NewListener(lt, serverTLS)) //nolint:errcheck // ends with Close
	return s, nil
}

// Close stops both listeners and closes open connections.
func (s *Server) Close() {
	s.plain.Close()
	s.tlsSrv.Close()
}

// Messages returns a copy of the messages received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// AuthFailures counts refused AUTH attempts.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

// Wait returns the first message to an address (compared case-
// insensitively) received after skip earlier ones to it, waiting up to
// timeout; the test fails when none arrives.
func (s *Server) Wait(t testing.TB, to string, skip int, timeout time.Duration) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := s.WaitContext(ctx, to, skip)
	if err != nil {
		t.Fatalf("smtptest: no message %d to %s within %s", skip+1, to, timeout)
	}
	return m
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		want, ok := ss.s.opts.Users[username]
		if !ok || want != password {
			ss.s.mu.Lock()
			ss.s.authFail++
			ss.s.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if len(ss.s.opts.Users) > 0 && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	if f := ss.s.opts.RejectSender; f != nil && f(from) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender not allowed"}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := ss.s.opts.RejectRecipient; f != nil && f(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, Message{
		From: ss.from, To: append([]string(nil), ss.to...), Data: data, User: ss.user, TLS: isTLS,
	})
	ss.s.mu.Unlock()
	select {
	case ss.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// loginServer is the server side of the LOGIN mechanism (user name and
// password, each prompted for in base64).
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response: the user name
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.user, string(response))
	}
	return nil, true, errors.New("unexpected response")
}

func selfSigned() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return certPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Parsed is a received message, decoded.
type Parsed struct {
	Header mail.Header
	// Subject is the decoded Subject header.
	Subject string
	// Text and HTML are the decoded text/plain and text/html parts.
	Text, HTML string
}

// Parse decodes a message (as in Message.Data, or an .eml file): headers,
// and the text and HTML parts of a single-part or multipart/alternative
// body, quoted-printable and base64 undone.
func Parse(raw []byte) (Parsed, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return Parsed{}, fmt.Errorf("smtptest: read message: %w", err)
	}
	p := Parsed{Header: msg.Header}
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Parsed{}, fmt.Errorf("smtptest: subject: %w", err)
	}
	if err := p.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0); err != nil {
		return Parsed{}, err
	}
	return p, nil
}

// Parsed decodes the message (see Parse); the test fails when it does not
// parse.
func (m Message) Parsed(t testing.TB) Parsed {
	t.Helper()
	p, err := Parse(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *Parsed) walk(contentType, cte string, body io.Reader, depth int) error {
	if depth > 5 {
		return errors.New("smtptest: multipart nested too deep")
	}
	if contentType == "" {
		contentType = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("smtptest: content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("smtptest: multipart: %w", err)
			}
			if err := p.walk(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part, depth+1); err != nil {
				return err
			}
		}
	}
	var r io.Reader = body
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("smtptest: %s part: %w", mt, err)
	}
	switch mt {
	case "text/plain":
		p.Text += string(b)
	case "text/html":
		p.HTML += string(b)
	}
	return nil
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// Links returns the http(s) URLs in s (a text part), in order.
func Links(s string) []string { return linkRE.FindAllString(s, -1) }

// WaitContext is Wait for code without a testing.TB: it returns the first
// message to an address after skip earlier ones, or the context's error.
func (s *Server) WaitContext(ctx context.Context, to string, skip int) (Message, error) {
	for {
		n := 0
		for _, m := range s.Messages() {
			for _, rcpt := range m.To {
				if strings.EqualFold(rcpt, to) {
					if n == skip {
						return m, nil
					}
					n++
					break
				}
			}
		}
		select {
		case <-s.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}
