package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// maxBody bounds the body of every request these handlers read: a
// certificate request is a few hundred bytes.
const maxBody = 64 << 10

// EnrolHandler serves the enrolment endpoint, to be mounted unauthenticated
// (the bootstrap token in the body is the credential) on the HTTPS server:
//
//	POST {api.EnrolPath}          api.EnrolRequest → 201 Issued, 202 Pending
//	GET  {api.EnrolPath}/{name}   → 200 Issued, 202 Pending, 403 Denied
//
// Errors are api.Status objects; a bad token is 401 whatever was wrong
// with it.
func (a *Authority) EnrolHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.EnrolPath, func(w http.ResponseWriter, r *http.Request) {
		var req api.EnrolRequest
		if !readJSON(w, r, &req) {
			return
		}
		resp, err := a.Enrol(req)
		if err != nil {
			a.writeError(w, err)
			return
		}
		writeEnrolResponse(w, resp, http.StatusCreated)
	})
	mux.HandleFunc("GET "+api.EnrolPath+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := a.Poll(r.PathValue("name"))
		if err != nil {
			a.writeError(w, err)
			return
		}
		writeEnrolResponse(w, resp, http.StatusOK)
	})
	return mux
}

func writeEnrolResponse(w http.ResponseWriter, resp api.EnrolResponse, issued int) {
	code := issued
	switch resp.Status {
	case api.EnrolPending:
		code = http.StatusAccepted
	case api.EnrolDenied:
		code = http.StatusForbidden
	}
	writeJSON(w, code, resp)
}

// AdminHandler serves the operator's side, to be mounted behind the HTTP
// API's authentication:
//
//	POST   {api.TokensPath}        api.BootstrapTokenRequest → api.BootstrapTokenResponse
//	GET    {api.TokensPath}        → list of api.BootstrapToken
//	DELETE {api.TokensPath}/{id}
//	POST   /apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval
//	                               api.CertificateApproval → the request
//	POST   /api/v1/nodes/{name}/revoke   → Status with the count
//
// onRevoke, if set, runs after a node was revoked, to cut its live
// connections (the broker's DisconnectIdentity).
func (a *Authority) AdminHandler(onRevoke func(node string)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.TokensPath, func(w http.ResponseWriter, r *http.Request) {
		var req api.BootstrapTokenRequest
		if !readJSON(w, r, &req) {
			return
		}
		resp, err := a.CreateToken(req)
		if err != nil {
			a.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, resp)
	})
	mux.HandleFunc("GET "+api.TokensPath, func(w http.ResponseWriter, r *http.Request) {
		toks, err := a.Tokens()
		if err != nil {
			a.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			api.TypeMeta `json:",inline"`
			Items        []api.BootstrapToken `json:"items"`
		}{api.TypeMeta{APIVersion: "v1", Kind: "BootstrapTokenList"}, toks})
	})
	mux.HandleFunc("DELETE "+api.TokensPath+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.DeleteToken(r.PathValue("id")); err != nil {
			a.writeError(w, err)
			return
		}
		writeStatus(w, http.StatusOK, api.StatusSuccess, "", "bootstrap token deleted")
	})
	mux.HandleFunc("POST /apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval", func(w http.ResponseWriter, r *http.Request) {
		var req api.CertificateApproval
		if !readJSON(w, r, &req) {
			return
		}
		var obj *api.CertificateSigningRequest
		var err error
		switch req.Decision {
		case api.CertificateApproved:
			obj, err = a.Approve(r.PathValue("name"), req.Reason, req.Message)
		case api.CertificateDenied:
			obj, err = a.Deny(r.PathValue("name"), req.Reason, req.Message)
		default:
			err = fmt.Errorf("%w: decision must be %s or %s", ErrInvalid, api.CertificateApproved, api.CertificateDenied)
		}
		if err != nil {
			a.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, obj)
	})
	mux.HandleFunc("POST /api/v1/nodes/{name}/revoke", func(w http.ResponseWriter, r *http.Request) {
		node := r.PathValue("name")
		n, err := a.Revoke(node)
		if err != nil {
			a.writeError(w, err)
			return
		}
		if onRevoke != nil {
			onRevoke(node)
		}
		writeStatus(w, http.StatusOK, api.StatusSuccess, "", fmt.Sprintf("node %s revoked (%d certificates)", node, n))
	})
	return mux
}

// readJSON decodes a bounded JSON body into v, or answers the error.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeStatus(w, http.StatusUnsupportedMediaType, api.StatusFailure, api.ReasonBadRequest, "the body must be application/json")
		return false
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeStatus(w, http.StatusRequestEntityTooLarge, api.StatusFailure, api.ReasonTooLarge, fmt.Sprintf("the body is over %d bytes", maxBody))
			return false
		}
		writeStatus(w, http.StatusBadRequest, api.StatusFailure, api.ReasonBadRequest, "the body is not valid JSON: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeStatus(w, http.StatusBadRequest, api.StatusFailure, api.ReasonBadRequest, "the body has data after its JSON value")
		return false
	}
	return true
}

// writeError maps the package's errors to HTTP. Other failures (the
// store's) are logged, not described to the caller.
func (a *Authority) writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalidToken):
		writeStatus(w, http.StatusUnauthorized, api.StatusFailure, "Unauthorized", ErrInvalidToken.Error())
	case errors.Is(err, ErrForbidden):
		writeStatus(w, http.StatusForbidden, api.StatusFailure, api.ReasonForbidden, err.Error())
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrWeakKey), errors.Is(err, ErrInvalidName), errors.Is(err, ErrInvalid):
		writeStatus(w, http.StatusUnprocessableEntity, api.StatusFailure, api.ReasonInvalid, err.Error())
	case errors.Is(err, ErrNotFound):
		writeStatus(w, http.StatusNotFound, api.StatusFailure, api.ReasonNotFound, err.Error())
	case errors.Is(err, ErrAlreadyDecided):
		writeStatus(w, http.StatusConflict, api.StatusFailure, api.ReasonConflict, err.Error())
	default:
		a.log.Error("pki request failed", "err", err)
		writeStatus(w, http.StatusInternalServerError, api.StatusFailure, api.ReasonInternalError, "internal error")
	}
}

func writeStatus(w http.ResponseWriter, code int, status, reason, msg string) {
	writeJSON(w, code, api.Status{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   status, Reason: reason, Code: code, Message: msg,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
