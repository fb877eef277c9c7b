package mail

import (
	"fmt"
	"log/slog"
	"path/filepath"
)

// OutboxFolder is the folder of the data folder that holds the outbox.
const OutboxFolder = "mail"

// Open returns the cloud's sender: SMTP through the server smtpURL names
// (see ParseURL), or, when smtpURL is empty, the outbox in
// dataDir/mail. log receives the sender's lines.
func Open(smtpURL, dataDir string, log *slog.Logger) (Sender, error) {
	if log == nil {
		log = slog.Default()
	}
	if smtpURL == "" {
		if dataDir == "" {
			return nil, fmt.Errorf("mail: no SMTP server and no data folder for the outbox")
		}
		o, err := NewOutbox(filepath.Join(dataDir, OutboxFolder))
		if err != nil {
			return nil, err
		}
		o.Log = log
		return o, nil
	}
	cfg, err := ParseURL(smtpURL)
	if err != nil {
		return nil, err
	}
	s, err := NewSMTP(cfg)
	if err != nil {
		return nil, err
	}
	s.Log = log
	return s, nil
}
