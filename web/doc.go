// Package web serves the person-facing pages: start page, sign-up, login,
// the consent and logout pages' templates (the oidc package renders them),
// and the privacy dashboard with its JSON API.
//
// Routes:
//
//	GET  /                        start page
//	GET|POST /signup              create an account (200 with the DID, 400 listing
//	                              every problem, 409 when the handle is taken)
//	GET|POST /login               password sign-in → sign-on session cookie → return_to
//	POST /login/passkey/{begin,finish}   passkey sign-in (JSON)
//	GET  /account[/profile|/services|/activity|/sessions|/privacy|/security|/data]
//	POST /account/…               the dashboard's forms
//	/account/api/…                the dashboard's JSON API
//	GET  /static/*                CSS and the passkey script (embedded; --web-dir
//	                              serves them from disk)
//
// Dashboard requests without a session go to /login and come back. Sensitive
// actions (delete, password change, signing out other devices, adding a
// passkey) need a sign-in younger than ReauthWindow or the password.
//
// Every page carries the security headers of [SecurityHeaders]; every
// state-changing route is behind http.CrossOriginProtection.
package web
