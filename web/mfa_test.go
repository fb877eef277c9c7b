package web

import "testing"

func TestIsAppCode(t *testing.T) {
	for code, want := range map[string]bool{
		"123456": true, "123 456": true, " 123-456 ": true, "12345": false, "1234567": false,
		"ABCDE-FGHJK": false, "12345A": false, "": false, "１２３４５６": false,
	} {
		if got := isAppCode(code); got != want {
			t.Errorf("isAppCode(%q) = %v, want %v", code, got, want)
		}
	}
}
