package diagnose

import (
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/lsm"
)

func TestLSMFinding(t *testing.T) {
	none := lsm.Host{AppArmorStatus: "not enabled (no AppArmor module)", SELinuxStatus: "disabled"}
	if f := LSM(none, ""); f.Level != OK || !strings.HasPrefix(f.Detail, "none (AppArmor: not enabled") {
		t.Errorf("no LSM: %+v", f)
	}
	aa := lsm.Host{AppArmor: true, AppArmorStatus: "enabled", SELinuxStatus: "disabled",
		ProfileLoaded: func(n string) (bool, error) { return n == "loaded", nil }}
	for prof, want := range map[string]string{"": "apparmor.default_profile is empty", "gone": `"gone" is not loaded`, "loaded": `RuntimeDefault is profile "loaded"`} {
		f := LSM(aa, prof)
		if !strings.Contains(f.Detail, want) || (prof == "loaded") != (f.Level == OK) {
			t.Errorf("default_profile %q: %+v, want %q", prof, f, want)
		}
	}
}
