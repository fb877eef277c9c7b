// Package mail sends the cloud's mail: address verification, password
// reset, notices of a changed password, of a lockout and of a sign-in from a
// new device.
//
// # Senders
//
// A Sender delivers one Message. There are two:
//
//   - SMTP (NewSMTP, from a URL read by ParseURL): one connection per
//     message to the operator's mail server. smtp:// upgrades with STARTTLS
//     before anything else is said and refuses a server without it;
//     smtps:// speaks TLS from the first byte. The certificate is checked
//     against the system's roots or a ca_file. Connections without TLS
//     (starttls=off) and insecure_skip_verify are allowed for loopback
//     servers only. With a user name in the URL the sender authenticates
//     with PLAIN or LOGIN, only over TLS (or to a loopback server).
//   - Outbox (NewOutbox): the default of a cloud without SMTP. Each message
//     is one .eml file (0600) in the data folder's mail/ (0700), and one
//     info line names the file, so a person running the cloud for
//     themselves can still open the mail and follow its link. The log line
//     carries the kind, the subject, a masked recipient (a…@example.org)
//     and the path; never the link, which is a secret.
//
// Open picks one: SMTP when a URL is configured, else the outbox.
//
// # States of a delivery
//
//	validate ──► connect ──► greet ──► TLS ──► AUTH ──► MAIL/RCPT/DATA ──► sent
//	    │           │                   │        │            │
//	    ▼           ▼                   ▼        ▼            ▼
//	ErrInvalid  ErrUnreachable       ErrTLS   ErrAuth   ErrRecipientRefused
//	Message     (temporary)                              ErrMessageRefused
//
// Every error Send returns wraps exactly one of these (errors.Is), and
// Temporary says whether a later try may succeed (an unreachable server, a
// 4xx reply). Errors name the stage and the server's reply code, never a
// recipient's address or the password. The connection is closed whatever
// happens; a context ended early closes it at once.
//
// # Rules of a message
//
// At most MaxRecipients recipients, each one address (no lists, no line
// breaks, at most MaxAddressBytes); a one-line subject of at most
// MaxSubjectBytes without control characters; a non-empty text part and
// an optional HTML part, MaxBodyBytes together, valid UTF-8. Anything else
// is refused with ErrInvalidMessage before a connection is made. Messages
// carry Auto-Submitted: auto-generated (RFC 3834) and a random Message-ID
// in the sender's domain.
//
// # Templates
//
// Render fills an embedded template (templates/<kind>.txt with text/template,
// templates/<kind>.html with html/template) from the kind's data type:
// VerifyEmail, PasswordReset, PasswordChanged, Lockout, NewDeviceSignIn.
// Free text (cloud name, handle, IP, device summary) is cut to one line,
// and a device summary loses anything a mail client could turn into a
// link; links must be absolute http(s) URLs; the HTML part escapes
// everything.
package mail
