// Package privacy holds what the person decides: consents given to services,
// privacy settings, the activity log, and the one function that decides which
// claims may be released ([Release]).
package privacy
