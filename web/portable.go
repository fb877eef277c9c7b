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

// maxImportBytes bounds an uploaded export file (plus the form around it).
const maxImportBytes = portable.DefaultMaxSize + 1<<20

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
	r.Body = http.MaxBytesReader(w, r.Body, maxImportBytes)
	fail := func(status int, msg string) error {
		h.Render(w, r, status, "signup", map[string]any{"Form": signupForm{}, "ImportError": msg, "ImportHandle": r.FormValue("new_handle")})
		return nil
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		return fail(http.StatusRequestEntityTooLarge, "The file could not be read (larger than 50 MiB?).")
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		return fail(http.StatusBadRequest, "Choose your export file.")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, portable.DefaultMaxSize+1))
	if err != nil {
		return fail(http.StatusBadRequest, "The file could not be read.")
	}
	im, err := h.Portable.Import(r.Context(), data, r.FormValue("passphrase"), portable.ImportOptions{Handle: r.FormValue("new_handle")})
	if err != nil {
		if msg := portable.Explain(err); msg != "" {
			status := http.StatusBadRequest
			if errors.Is(err, portable.ErrAlreadyPresent) || errors.Is(err, portable.ErrHandleTaken) {
				status = http.StatusConflict
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
		"Kept": len(im.ConsentsKept), "Dropped": len(im.ConsentsDropped)})
	return nil
}
