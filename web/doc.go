// Package web serves the person-facing pages: the start page and sign-up
// (later login, consent and the privacy dashboard).
//
// Routes:
//
//	GET  /          start page
//	GET  /signup    sign-up form
//	POST /signup    create the account; 200 with the DID, or 400 with the
//	                form and every problem listed; 409 when the handle is taken
//	GET  /static/*  CSS (embedded; --web-dir serves it from disk)
//
// Every page carries the security headers of [SecurityHeaders]; state-changing
// routes are behind http.CrossOriginProtection.
package web
