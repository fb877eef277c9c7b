package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

const maxCAFileBytes = 1 << 20

// SMTP delivers messages through an SMTP server, one connection per message
// (mail here is rare: a verification, a reset, a notice). Safe for
// concurrent use.
type SMTP struct {
	cfg  Config
	from *mail.Address
	tls  *tls.Config
	// Log receives one debug line per delivered message and one warning
	// per failure (never addresses, subjects or bodies).
	Log *slog.Logger
	// Now stamps the Date header.
	Now func() time.Time
	// dial opens the TCP connection; tests replace it to count
	// connections.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ Sender = (*SMTP)(nil)

// NewSMTP prepares delivery through the server cfg names. It reads the CA
// file now, so that a wrong path fails at start-up; it does not connect.
func NewSMTP(cfg *Config) (*SMTP, error) {
	if cfg == nil {
		return nil, errors.New("mail: no SMTP configuration")
	}
	c := *cfg
	if c.Host == "" || c.Port < 1 || c.Port > 65535 {
		return nil, errors.New("mail: SMTP configuration has no host or port")
	}
	switch c.Security {
	case SecurityStartTLS, SecurityTLS:
	case SecurityNone:
		if !isLoopback(c.Host) {
			return nil, fmt.Errorf("mail: SMTP without TLS is allowed only for a loopback server, not %q", c.Host)
		}
	default:
		return nil, fmt.Errorf("mail: SMTP security %q is unknown", c.Security)
	}
	if c.InsecureSkipVerify && !isLoopback(c.Host) {
		return nil, fmt.Errorf("mail: insecure_skip_verify is allowed only for a loopback server, not %q", c.Host)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Auth == "" {
		c.Auth = AuthAuto
	}
	from, err := parseFrom(c.From)
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	tc := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // loopback only, checked above
	if c.CAFile != "" {
		pool, err := loadCAFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	d := &net.Dialer{}
	return &SMTP{cfg: c, from: from, tls: tc, Log: slog.Default(), Now: time.Now, dial: d.DialContext}, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mail: SMTP ca_file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxCAFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("mail: SMTP ca_file: %w", err)
	}
	if len(buf) > maxCAFileBytes {
		return nil, fmt.Errorf("mail: SMTP ca_file %s is larger than %d bytes", path, maxCAFileBytes)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(buf) {
		return nil, fmt.Errorf("mail: SMTP ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Config is the configuration the sender was made with (String redacts the
// password).
func (s *SMTP) Config() Config { return s.cfg }

// Send delivers m in one SMTP transaction. The error wraps ErrInvalidMessage,
// ErrRecipientRefused, ErrMessageRefused, ErrUnreachable, ErrTLS or ErrAuth;
// Temporary says whether trying later may help.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	msg, err := build(m, s.from, to, now().UTC(), gomail.EncodingQP)
	if err != nil {
		return invalid("%v", err)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.cfg.Timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}

	// go-mail leaves the connection open when the greeting, STARTTLS or
	// AUTH fails: keep hold of it here and close it in every case.
	var (
		mu      sync.Mutex
		conns   []net.Conn
		dialErr error
	)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := s.dial(ctx, network, addr)
		if err != nil {
			mu.Lock()
			dialErr = err
			mu.Unlock()
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		if s.cfg.Security == SecurityTLS {
			tc := tls.Client(c, s.tls.Clone())
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, &sendError{class: ErrTLS, detail: tlsDetail(err), cause: err}
			}
			c = tc
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return c, nil
	}
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	defer closeAll()
	// go-mail sets its own deadlines from the timeout: a context canceled
	// early closes the connection, so that the read in progress ends.
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}

	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(max(timeout, time.Millisecond)),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(dial),
		gomail.WithoutNoop(),
	}
	switch s.cfg.Security {
	case SecurityStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default: // TLS is done by dial, or there is none
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(s.cfg.HELO))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
		switch s.cfg.Auth {
		case AuthPlain:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain))
		case AuthLogin:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthLogin))
		default:
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
		}
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("mail: SMTP client: %w", err)
	}

	start := time.Now()
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		mu.Lock()
		de := dialErr
		mu.Unlock()
		return s.fail(m, classifyDial(ctx, err, de))
	}
	if err := client.SendWithSMTPClient(sc, msg); err != nil {
		return s.fail(m, classifySend(ctx, err))
	}
	// The message is accepted once DATA ends with 250; a failing QUIT
	// does not undo that.
	_ = client.CloseWithSMTPClient(sc)
	s.logger().DebugContext(ctx, "mail sent", "kind", string(m.Kind), "server", s.cfg.Host, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

func (s *SMTP) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *SMTP) fail(m Message, err error) error {
	s.logger().Warn("mail not sent", "kind", string(m.Kind), "server", s.cfg.Host, "err", err.Error(), "temporary", Temporary(err))
	return err
}

// classifyDial sorts an error of connecting, greeting, STARTTLS or AUTH.
func classifyDial(ctx context.Context, err, dialErr error) error {
	var se *sendError
	if errors.As(err, &se) {
		return se
	}
	if dialErr != nil {
		return &sendError{class: ErrUnreachable, temporary: true, detail: netDetail(ctx, dialErr), cause: dialErr}
	}
	if isTLSError(err) {
		return &sendError{class: ErrTLS, detail: tlsDetail(err), cause: err}
	}
	msg := err.Error()
	var te *textproto.Error
	if errors.As(err, &te) {
		switch {
		case strings.Contains(msg, "SMTP AUTH failed"):
			return &sendError{class: ErrAuth, temporary: te.Code/100 == 4, detail: "server replied " + strconv.Itoa(te.Code), cause: err}
		case te.Code/100 == 4:
			return &sendError{class: ErrUnreachable, temporary: true, detail: "server replied " + strconv.Itoa(te.Code), cause: err}
		}
		if strings.Contains(strings.ToUpper(msg), "STARTTLS") {
			return &sendError{class: ErrTLS, detail: "server refused STARTTLS (" + strconv.Itoa(te.Code) + ")", cause: err}
		}
		return &sendError{class: ErrUnreachable, detail: "server replied " + strconv.Itoa(te.Code) + " before the message", cause: err}
	}
	switch {
	case strings.Contains(msg, "does not support STARTTLS"):
		return &sendError{class: ErrTLS, detail: "server does not offer STARTTLS (use smtps:// or, on loopback, ?starttls=off)", cause: err}
	case errors.Is(err, gosmtp.ErrUnencrypted):
		return &sendError{class: ErrAuth, detail: "the server wants the password over a connection without TLS", cause: err}
	case strings.Contains(msg, "does not support SMTP AUTH"), strings.Contains(msg, "auth") && strings.Contains(msg, "not supported"),
		errors.Is(err, gomail.ErrNoSupportedAuthDiscovered):
		return &sendError{class: ErrAuth, detail: "the server offers no usable authentication mechanism", cause: err}
	}
	return &sendError{class: ErrUnreachable, temporary: true, detail: netDetail(ctx, err), cause: err}
}

// classifySend sorts an error of the mail transaction.
func classifySend(ctx context.Context, err error) error {
	var ge *gomail.SendError
	if !errors.As(err, &ge) {
		return &sendError{class: ErrUnreachable, temporary: true, detail: netDetail(ctx, err), cause: err}
	}
	detail := ""
	if code := ge.ErrorCode(); code != 0 {
		detail = "server replied " + strconv.Itoa(code)
		if esc := ge.EnhancedStatusCode(); esc != "" {
			detail += " " + esc
		}
	}
	switch ge.Reason {
	case gomail.ErrSMTPRcptTo:
		return &sendError{class: ErrRecipientRefused, temporary: ge.IsTemp(), detail: detail, cause: err}
	case gomail.ErrSMTPMailFrom:
		// 530 5.7.0 (RFC 4954; some servers say 502 5.7.0): the server
		// wants AUTH and the URL gives no user name.
		if ge.ErrorCode() == 530 || (ge.ErrorCode()/100 == 5 && ge.EnhancedStatusCode() == "5.7.0") {
			return &sendError{class: ErrAuth, detail: detail + " (the server wants authentication: smtp://user:pass@host)", cause: err}
		}
		fallthrough
	case gomail.ErrSMTPData, gomail.ErrSMTPDataClose, gomail.ErrNoUnencoded:
		if ge.ErrorCode() == 0 {
			return &sendError{class: ErrUnreachable, temporary: true, detail: netDetail(ctx, err), cause: err}
		}
		return &sendError{class: ErrMessageRefused, temporary: ge.IsTemp(), detail: detail, cause: err}
	}
	if detail == "" {
		detail = netDetail(ctx, err)
	}
	return &sendError{class: ErrUnreachable, temporary: true, detail: detail, cause: err}
}

func isTLSError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		rh tls.RecordHeaderError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
		ae tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &ua) || errors.As(err, &hn) ||
		errors.As(err, &ci) || errors.As(err, &ae) || strings.Contains(err.Error(), "tls: ")
}

func tlsDetail(err error) string {
	var (
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &ua):
		return "the server's certificate is not signed by a trusted authority (give it with ca_file)"
	case errors.As(err, &hn):
		return "the server's certificate is for another host name"
	case errors.As(err, &ci):
		return "the server's certificate is invalid or expired"
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return "the server does not speak TLS on this port (smtp:// with STARTTLS, or smtps://?)"
	}
	return "handshake failed"
}

func netDetail(ctx context.Context, err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), ctx.Err() != nil:
		return "timed out"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "could not connect"
	}
	return "connection failed"
}
