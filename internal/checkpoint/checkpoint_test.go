package checkpoint

import (
	"context"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

// criu 3.17 on Linux 6.18, verbatim.
const criuOnNewKernel = `Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable
Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.
Error (criu/crtools.c:260): Could not initialize kernel features detection.
`

func TestErrorLinesKeepCriusReason(t *testing.T) {
	got := errorLines(criuOnNewKernel)
	if !strings.Contains(got, "Unexpected rt vDSO area bounds") || strings.Count(got, "; ") != 3 || strings.Contains(got, "\n") {
		t.Fatalf("errorLines = %q", got)
	}
	if got := errorLines("Looks good.\n"); got != "Looks good." {
		t.Fatalf("errorLines without Error lines = %q", got)
	}
}

func TestCheckIsFailedPreconditionWithTheReason(t *testing.T) {
	s := Support{CRIUPath: DefaultCRIU, Problem: "criu check failed (exit status 1): " + errorLines(criuOnNewKernel)}
	err := s.Check("checkpoint of container abc")
	if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), "container abc") || !strings.Contains(err.Error(), "vDSO") {
		t.Fatalf("Check = %v", err)
	}
	if (Support{}).Check("x") != nil {
		t.Fatal("a host where criu works is refused")
	}
}

func TestDetectMissingCRIU(t *testing.T) {
	s := Detect(context.Background(), "/nonexistent/criu")
	if s.Usable() || !strings.Contains(s.Problem, "not installed") {
		t.Fatalf("Detect = %+v", s)
	}
}
