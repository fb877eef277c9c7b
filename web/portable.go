package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/portable"
)

// MaxImportBytes bounds the body of /signup/import: the largest export
// file plus 1 MiB for the form around it.
const MaxImportBytes = portable.DefaultMaxSize + 1<<20

// maxImportField bounds each text field of the import form, and
// maxImportParts the number of parts, so that nothing but the file itself
// takes memory.
const (
	maxImportField = 4 << 10
	maxImportParts = 8
)

func (h *Handler) mountPortable(r chi.Router) {
	if h.Portable == nil {
		return
	}
	r.With(h.requireAccount(false), crossOrigin, formLimit).Method(http.MethodPost, "/account/export", h.wrap(h.postExport))
	r.With(crossOrigin, h.Limits.PerIP(20, time.Hour, false)).Method(http.MethodPost, "/signup/import", h.wrap(h.postImport))
}

// postExport is "Download my identity": a recent sign-in (or the password)
// and a passphrase the person chooses.
func (h *Handler) postExport(w http.ResponseWriter, r *http.Request) error {
	m := current(r)
	f := r.PostForm
	fail := func(err error) error {
		return h.formError(w, r, err, "data", "account_data", nil)
	}
	if err := h.reauth(r, m, f.Get("password")); err != nil {
		return fail(err)
	}
	pass := f.Get("passphrase")
	if pass != f.Get("passphrase_confirm") {
		return fail(&apiError{http.StatusBadRequest, "invalid_request", "The two passphrases differ."})
	}
	file, err := h.Portable.Export(r.Context(), m.acct.DID, pass, f.Get("include_password") == "yes")
	if err != nil {
		if msg := portable.Explain(err); msg != "" {
			return fail(&apiError{http.StatusBadRequest, "invalid_request", upperFirst(msg) + "."})
		}
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="commonsid-%s-%s.json"`, m.acct.Handle, h.Now().UTC().Format("20060102")))
	w.Write(file)
	return nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// postImport is "Bring my identity" on the sign-up page: the export file,
// its passphrase and, when the handle is taken here, a new one.
func (h *Handler) postImport(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxImportBytes)
	in, readErr := readImportForm(r)
	fail := func(status int, msg string) error {
		h.Render(w, r, status, "signup", map[string]any{"Form": signupForm{}, "ImportError": msg, "ImportHandle": in.handle})
		return nil
	}
	if readErr != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(readErr, &tooLarge) || errors.Is(readErr, errImportTooLarge) {
			return fail(http.StatusRequestEntityTooLarge, "The file could not be read (larger than 50 MiB?).")
		}
		return fail(http.StatusBadRequest, "The file could not be read.")
	}
	if in.file == nil {
		return fail(http.StatusBadRequest, "Choose your export file.")
	}
	im, err := h.Portable.Import(r.Context(), in.file, in.passphrase, portable.ImportOptions{Handle: in.handle, RecoveryPhrase: in.recoveryPhrase})
	if err != nil {
		if msg := portable.Explain(err); msg != "" {
			status := http.StatusBadRequest
			switch {
			case errors.Is(err, portable.ErrAlreadyPresent), errors.Is(err, portable.ErrHandleTaken),
				errors.Is(err, portable.ErrExportSuperseded), errors.Is(err, portable.ErrMoveLost), errors.Is(err, portable.ErrMoveRace):
				status = http.StatusConflict
			case errors.Is(err, portable.ErrMoveNotWitnessed), errors.Is(err, portable.ErrNoLatestLog):
				status = http.StatusServiceUnavailable
			}
			if errors.Is(err, portable.ErrExportSuperseded) {
				// The sentence names the versions, the date and the new home.
				msg = strings.TrimPrefix(err.Error(), portable.ErrExportSuperseded.Error()+": ")
			}
			return fail(status, upperFirst(msg)+".")
		}
		var ve interface{ Error() string }
		if errors.As(err, &ve) && strings.HasPrefix(err.Error(), "handle:") {
			return fail(http.StatusBadRequest, err.Error())
		}
		return err
	}
	if err := h.startSession(w, r, im.Account, []string{"pwd"}, map[string]any{"method": "import"}); err != nil {
		return err
	}
	h.Render(w, r, http.StatusOK, "imported", map[string]any{"Account": im.Account, "From": im.From, "Move": im.MoveStatement,
		"Log": im.Log, "Kept": len(im.ConsentsKept), "Dropped": len(im.ConsentsDropped)})
	return nil
}

// importForm is what the import form carries.
type importForm struct {
	file           []byte // nil when no file part came
	passphrase     string
	handle         string
	recoveryPhrase string
}

var errImportTooLarge = errors.New("import form too large")

// readImportForm streams the multipart import form part by part, never
// through Request.ParseMultipartForm: that one writes file parts beyond
// its memory budget to temporary files, which are not removed when the
// request is a copy (every middleware's WithContext makes one) and which
// would only be read back into memory here anyway. The file is read up to
// portable.DefaultMaxSize, each text field up to maxImportField; unknown
// parts are skipped, and more than maxImportParts parts are refused.
func readImportForm(r *http.Request) (importForm, error) {
	var in importForm
	mr, err := r.MultipartReader()
	if err != nil {
		return in, err
	}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return in, nil
		}
		if err != nil {
			return in, err
		}
		if n == maxImportParts {
			part.Close()
			return in, errImportTooLarge
		}
		switch part.FormName() {
		case "file":
			if part.FileName() == "" { // a file input left empty
				break
			}
			data, err := io.ReadAll(io.LimitReader(part, portable.DefaultMaxSize+1))
			if err != nil {
				return in, err
			}
			if len(data) > portable.DefaultMaxSize {
				return in, errImportTooLarge
			}
			in.file = data
		case "passphrase", "new_handle", "recovery_phrase":
			v, err := io.ReadAll(io.LimitReader(part, maxImportField+1))
			if err != nil {
				return in, err
			}
			if len(v) > maxImportField {
				return in, errImportTooLarge
			}
			switch part.FormName() {
			case "passphrase":
				in.passphrase = string(v)
			case "new_handle":
				in.handle = string(v)
			default:
				in.recoveryPhrase = string(v)
			}
		}
		part.Close()
	}
}
