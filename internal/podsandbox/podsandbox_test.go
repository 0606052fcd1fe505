package podsandbox

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestAnnotateNamesThePodSandbox(t *testing.T) {
	s := &specs.Spec{Annotations: map[string]string{"keep": "me"}, Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}}}}
	Annotate(s, "pod1", true)
	if len(s.Linux.Namespaces) != 1 || s.Linux.Namespaces[0].Type != specs.MountNamespace {
		t.Errorf("a pod-shared PID namespace must leave the spec: %v", s.Linux.Namespaces)
	}
	if s.Annotations[AnnotationContainerType] != TypeContainer || s.Annotations[AnnotationSandboxID] != "pod1" || s.Annotations["keep"] != "me" {
		t.Fatalf("annotations = %v", s.Annotations)
	}
	var empty specs.Spec
	Annotate(&empty, "pod2", true)
	if empty.Annotations[AnnotationSandboxID] != "pod2" {
		t.Fatalf("annotations = %v", empty.Annotations)
	}
}

func TestNotExistRecognisesUnknownIDs(t *testing.T) {
	for msg, want := range map[string]bool{
		`runsc delete (pod sandbox): exit status 128: loading container "x": file does not exist`: true,
		`runsc delete (pod sandbox): exit status 1: permission denied`:                            false,
	} {
		if got := notExist(errors.New(msg)); got != want {
			t.Errorf("notExist(%q) = %v", msg, got)
		}
	}
}

func TestAnnotateKeepsAPrivatePIDNamespace(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}}
	Annotate(s, "pod1", false)
	if len(s.Linux.Namespaces) != 1 {
		t.Fatalf("namespaces = %v", s.Linux.Namespaces)
	}
}
