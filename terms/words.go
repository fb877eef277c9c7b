package terms

// Words are the sentences the plain-words rendering is made of, in one
// language. Every string a person reads about commitments is here, so that
// a translation is one more Words value.
type Words struct {
	// KeepsNothing: the service keeps none of what it receives.
	KeepsNothing string
	// KeepsFor: "%[1]s" is what is kept, "%[2]s" for how long.
	KeepsFor string
	// KeepsSession: "%s" is what is kept only while signed in.
	KeepsSession string
	// Purpose follows a keep sentence: "%s" is the service's own words.
	Purpose string
	// ForksNone, ForksPairwise and ForksClaims ("%s": the claims) say what
	// forks receive.
	ForksNone, ForksPairwise, ForksClaims string
	// Export: people may export their data.
	Export string
	// Claim and Scope name a claim or a scope the service keeps; unknown
	// names use OtherClaim / OtherScope with the name.
	Claim, Scope           map[string]string
	OtherClaim, OtherScope string
	// Units of durations: singular and plural of year, month, week, day,
	// hour, minute, second; And joins the last two parts of a list.
	Units [7][2]string
	And   string
	// NotCommons labels a service outside the terms; NotCommonsWhy says
	// what that means.
	NotCommons, NotCommonsWhy string
	// Heading introduces the commitments; NoCommitments stands for them
	// when a service published none.
	Heading, NoCommitments string
	// Changed flags commitments changed since the person consented.
	Changed string
}

// English is the English wording.
var English = Words{
	KeepsNothing:  "It keeps none of what you share with it once you sign out.",
	KeepsFor:      "It keeps %[1]s for %[2]s.",
	KeepsSession:  "It keeps %s only while you are signed in.",
	Purpose:       "Why: %s",
	ForksNone:     "It shares nothing about you with forks of it.",
	ForksPairwise: "Forks of it may learn that you are the same person (your identifier in its family of services), and nothing else.",
	ForksClaims:   "Forks of it may receive %s.",
	Export:        "You may export all the data it holds about you.",
	Claim: map[string]string{
		"name": "your name", "given_name": "your given name", "family_name": "your family name", "middle_name": "your middle name",
		"nickname": "your nickname", "preferred_username": "your handle", "profile": "your profile page", "picture": "your picture",
		"website": "your website", "email": "your email address", "email_verified": "whether your email is verified",
		"gender": "your gender", "birthdate": "your birth date", "zoneinfo": "your time zone", "locale": "your locale",
		"phone_number": "your phone number", "phone_number_verified": "whether your phone is verified", "address": "your postal address",
		"updated_at": "when your profile last changed", "did": "your decentralized identifier (DID)", "sub": "your identifier at the service",
	},
	Scope: map[string]string{
		"openid": "your identifier at the service", "profile": "your profile (name and handle)", "email": "your email address",
		"address": "your postal address", "phone": "your phone number", "did": "your decentralized identifier (DID)",
		"offline_access": "its access while you are away (refresh tokens)",
	},
	OtherClaim: "the detail %q",
	OtherScope: "what the scope %q gives it",
	Units: [7][2]string{{"year", "years"}, {"month", "months"}, {"week", "weeks"}, {"day", "days"},
		{"hour", "hours"}, {"minute", "minutes"}, {"second", "seconds"}},
	And:           "and",
	NotCommons:    "Not a commons service",
	NotCommonsWhy: "It has not committed to the commons' terms: published source code, a privacy policy, terms of service, and what it keeps about you and for how long.",
	Heading:       "What it commits to",
	NoCommitments: "It has published no commitments about what it keeps.",
	Changed:       "Its commitments changed since you agreed: you will be asked again before it receives anything more.",
}
