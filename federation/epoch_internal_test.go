package federation

import (
	"strings"
	"testing"
)

// TestResyncReason: a follower resyncs when the epoch changes or the head
// goes below its cursor, and not otherwise (a first epoch, an older cloud
// that sends neither, a head at or past the cursor).
func TestResyncReason(t *testing.T) {
	head := func(n int64) *int64 { return &n }
	for name, tc := range map[string]struct {
		known  string
		cursor int64
		page   pageResponse
		want   string // a part of the reason; "" for none
	}{
		"unchanged":                {"E1", 40, pageResponse{Epoch: "E1", Head: head(45)}, ""},
		"head at the cursor":       {"E1", 40, pageResponse{Epoch: "E1", Head: head(40)}, ""},
		"epoch changed":            {"E1", 40, pageResponse{Epoch: "E2", Head: head(45)}, "epoch changed from E1 to E2"},
		"epoch changed, head low":  {"E1", 40, pageResponse{Epoch: "E2", Head: head(3)}, "epoch changed"},
		"head below the cursor":    {"E1", 40, pageResponse{Epoch: "E1", Head: head(39)}, "head 39 is below the cursor 40"},
		"first epoch seen":         {"", 40, pageResponse{Epoch: "E1", Head: head(45)}, ""},
		"first epoch, head low":    {"", 40, pageResponse{Epoch: "E1", Head: head(12)}, "head 12"},
		"older cloud: no epoch":    {"", 40, pageResponse{}, ""},
		"older cloud, epoch known": {"E1", 40, pageResponse{}, ""},
		"no head, epoch changed":   {"E1", 40, pageResponse{Epoch: "E2"}, "epoch changed"},
		"fresh follower":           {"", 0, pageResponse{Epoch: "E1", Head: head(0)}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			got := resyncReason(&PeerEpoch{Epoch: tc.known}, tc.cursor, &tc.page)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCheckPage: what a peer says of its epoch is bounded.
func TestCheckPage(t *testing.T) {
	neg := int64(-1)
	for name, page := range map[string]pageResponse{
		"long epoch":    {Epoch: strings.Repeat("e", MaxEpoch+1)},
		"spaced epoch":  {Epoch: "a b"},
		"negative head": {Epoch: "E1", Head: &neg},
	} {
		if checkPage(&page) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := checkPage(&pageResponse{Epoch: strings.Repeat("e", MaxEpoch)}); err != nil {
		t.Errorf("a good page: %v", err)
	}
}
